// flowscope dashboard: draws the Plotly figures a page carries and wires the selections.
"use strict";

function drawFigures(root) {
  if (typeof Plotly === "undefined") return;
  root.querySelectorAll("[data-figure]").forEach((element) => {
    if (element.dataset.drawn) return;
    const figure = JSON.parse(element.dataset.figure);
    Plotly.newPlot(element, figure.data, figure.layout, { responsive: true, displaylogo: false });
    element.dataset.drawn = "1";
  });
}

function wireRunSelection(root) {
  const button = root.querySelector("#compare-button");
  if (!button || button.dataset.wired) return;
  button.dataset.wired = "1";
  const update = () => {
    const count = root.querySelectorAll(".select-run:checked").length;
    button.disabled = count < 2 || count > 50;
    button.textContent = count ? `Compare ${count} selected` : "Compare selected";
  };
  root.querySelectorAll(".select-run").forEach((box) => box.addEventListener("change", update));
  update();
}

function wireColumnChooser(root) {
  const form = root.querySelector(".column-chooser");
  if (!form || form.dataset.wired) return;
  form.dataset.wired = "1";
  form.addEventListener("submit", () => {
    const chosen = [...form.querySelectorAll(".column-choice:checked")].map((box) => box.value);
    form.querySelector("#columns-value").value = chosen.join(",");
  });
}

function wireVersionSelection(root) {
  const form = root.querySelector("#version-compare");
  if (!form || form.dataset.wired) return;
  form.dataset.wired = "1";
  const button = form.querySelector("#compare-versions");
  const boxes = form.querySelectorAll(".select-version");
  const update = () => {
    const chosen = [...boxes].filter((box) => box.checked).map((box) => box.value);
    form.querySelector("#versions-value").value = chosen.join(",");
    button.disabled = chosen.length < 2;
  };
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
}

function init(root) {
  drawFigures(root);
  wireRunSelection(root);
  wireColumnChooser(root);
  wireVersionSelection(root);
}

// The figures of content htmx takes away (the study page's refresh replaces its body) are
// purged: each drawn figure holds a window resize handler that would keep it alive.
function purgeFigures(root) {
  if (typeof Plotly === "undefined") return;
  root.querySelectorAll(".js-plotly-plot").forEach((element) => Plotly.purge(element));
}

window.addEventListener("load", () => init(document));
// A form marked data-swap-errors shows the page's answer to a bad input (a 4xx page that
// names the problem) instead of htmx's default of dropping it.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  const source = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (status >= 400 && status < 500 && source && source.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.shouldSwap) purgeFigures(event.detail.target);
});
// Swapped-in content is drawn once htmx has settled it, not before: settling gives an
// element that kept its id (every chart of a refreshed study page) its class from the
// server again, which would strip the class Plotly's styles hang on from a figure drawn
// earlier (toolbar and legends then fall apart). htmx announces settled content on each
// new element, so this also covers an element that replaced the old one (outerHTML).
document.addEventListener("htmx:afterSettle", (event) => init(event.target));
