// Draws the overview's chart from the data-series attribute of #daily-chart (the console's CSP
// allows no inline script, so the data travels in the page and the code in this file).
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("daily-chart");
    if (!holder || typeof uPlot === "undefined") return;
    var series = JSON.parse(holder.getAttribute("data-series"));
    var width = Math.max(holder.clientWidth, 280);
    var options = {
      width: width,
      height: 300,
      scales: { x: { time: true }, rate: { range: [0, 100] }, nps: { range: [-100, 100] } },
      series: [
        {},
        { label: "Response rate (%)", scale: "rate", stroke: "#1a7f37", width: 2, spanGaps: false },
        { label: "NPS", scale: "nps", stroke: "#0a5cc2", width: 2, dash: [6, 4], spanGaps: false },
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
