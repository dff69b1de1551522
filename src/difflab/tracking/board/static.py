"""The board's stylesheet and script, served from /static/ (the CSP allows no inline code)."""

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #23395d; padding: 8px 16px; }
header a { color: #fff; font-weight: bold; text-decoration: none; }
main { padding: 8px 16px 32px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th a { color: #23395d; }
.status-finished { color: #2c7a2c; } .status-failed { color: #b22; } .status-running { color: #b70; }
.status-interrupted { color: #a5a; }
.charts { display: flex; flex-wrap: wrap; gap: 10px; }
svg.chart { background: #fff; border: 1px solid #ddd; }
img.grid { image-rendering: pixelated; width: 336px; border: 1px solid #ccc; display: block; }
figure.grids { margin: 0; }
input.slider { width: 336px; }
.side { display: flex; gap: 16px; flex-wrap: wrap; }
pre.diff { background: #fff; border: 1px solid #ddd; padding: 8px; max-height: 400px; overflow: auto; }
.empty { color: #888; font-style: italic; }
.note { color: #a35200; }
details.classes { margin: 6px 0; } summary { cursor: pointer; }
form.filter input { width: 320px; }
"""

JS = """
// Sample-grid slider: swaps the <img> source among the grids listed in data-urls.
document.querySelectorAll("figure.grids").forEach(function (fig) {
  var urls = JSON.parse(fig.dataset.urls), labels = JSON.parse(fig.dataset.labels);
  var img = fig.querySelector("img"), cap = fig.querySelector("figcaption");
  fig.querySelector("input.slider").addEventListener("input", function (ev) {
    var i = Number(ev.target.value);
    img.src = urls[i];
    cap.textContent = labels[i];
  });
});
"""
