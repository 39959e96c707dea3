// Draws the overview's chart from the data-series attribute of #daily-chart (the console's CSP
// allows no inline script, so the data travels in the page and the code in this file).
(function () {
  "use strict";
  var DAY = 24 * 60 * 60;
  var HALF_DAY = DAY / 2;
  function draw() {
    var holder = document.getElementById("daily-chart");
    if (!holder || typeof uPlot === "undefined") return;
    var series = JSON.parse(holder.getAttribute("data-series"));
    var first = series.days[0];
    var last = series.days[series.days.length - 1];
    var width = Math.max(holder.clientWidth, 280);
    var options = {
      width: width,
      height: 300,
      scales: {
        // The days are Unix seconds (uPlot's default unit). Given a single day, uPlot widens the
        // scale by 86,400,000 (a day in milliseconds, taken as seconds: about three years), so the
        // range comes from the data itself: half a day before the first day and after the last.
        x: { time: true, range: function () { return [first - HALF_DAY, last + HALF_DAY]; } },
        rate: { range: [0, 100] },
        nps: { range: [-100, 100] },
      },
      // Days are UTC days: label them in UTC, whatever the browser's own time zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      series: [
        { label: "Day (UTC)", value: "{YYYY}-{MM}-{DD}" },
        // Points as well as lines: a day between two gaps, or the only day, has no line to draw.
        { label: "Response rate (%)", scale: "rate", stroke: "#1a7f37", width: 2, spanGaps: false, points: { show: true, size: 7 } },
        { label: "NPS", scale: "nps", stroke: "#0a5cc2", width: 2, dash: [6, 4], spanGaps: false, points: { show: true, size: 7 } },
      ],
      hooks: {
        // The drawn time range, in seconds, for a reader (or a test) to check the scale against the data.
        setScale: [
          function (u, key) {
            if (key === "x") holder.setAttribute("data-x-range", JSON.stringify([u.scales.x.min, u.scales.x.max]));
          },
        ],
      },
      axes: [
        // One tick per day at most: hours mean nothing on a chart of days.
        { incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 182 * DAY, 365 * DAY], values: "{MMM} {D}" },
        { scale: "rate", label: "Response rate (%)" },
        { scale: "nps", side: 1, label: "NPS", grid: { show: false } },
      ],
    };
    var plot = new uPlot(options, [series.days, series.response_rate, series.nps], holder);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(holder.clientWidth, 280), height: 300 });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
