// The overview's chart: uPlot redrawn from the series the server puts in
// each live fragment (#series[data-series]); the chart lives outside the
// swapped fragment, so it is created once and only fed new data.
(function () {
  "use strict";
  var plot = null;
  var names = ["received", "delivered", "failed"];
  var colours = ["#1f6feb", "#0b7a35", "#b42318"];

  function draw() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("series");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.getAttribute("data-series"));
    if (plot !== null) {
      plot.setData(data);
      return;
    }
    var series = [{}];
    for (var i = 0; i < names.length; i++) {
      series.push({ label: names[i], stroke: colours[i], width: 1.5 });
    }
    plot = new uPlot(
      { width: Math.min(900, holder.clientWidth || 900), height: 220, series: series },
      data,
      holder
    );
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
