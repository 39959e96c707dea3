// Draws the overview's chart from the data-series attribute of #daily-chart (the console's CSP
// allows no inline script, so the data travels in the page and the code in this file).
(function () {
  "use strict";
  var HALF_DAY = 12 * 60 * 60;
  function draw() {
    var holder = document.getElementById("daily-chart");
    if (!holder || typeof uPlot === "undefined") return;
    var series = JSON.parse(holder.getAttribute("data-series"));
    var width = Math.max(holder.clientWidth, 280);
    var options = {
      width: width,
      height: 300,
      scales: {
        // The days are Unix seconds (uPlot's default unit). Left to itself uPlot pads a single day
        // into years; half a day either side keeps one point, or a few, on a scale of days.
        x: { time: true, range: function (u, min, max) { return [min - HALF_DAY, max + HALF_DAY]; } },
        rate: { range: [0, 100] },
        nps: { range: [-100, 100] },
      },
      series: [
        {},
        // Points as well as lines: a day between two gaps, or the only day, has no line to draw.
        { label: "Response rate (%)", scale: "rate", stroke: "#1a7f37", width: 2, spanGaps: false, points: { show: true, size: 7 } },
        { label: "NPS", scale: "nps", stroke: "#0a5cc2", width: 2, dash: [6, 4], spanGaps: false, points: { show: true, size: 7 } },
      ],
      axes: [
        {},
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
