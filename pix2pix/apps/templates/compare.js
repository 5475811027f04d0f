// The comparison page: runs (columns) and images (rows) sorted by a metric, the step slider over the training
// samples and the before/after viewer. Static, so the page's CSP allows exactly this script by its hash.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("compare-data").textContent);

  function table(section, group) {
    const $ = (selector) => section.querySelector(selector);
    const body = $("tbody");
    let columns = group.members;

    function reorderColumns(order) {
      columns = order;
      const keys = [...order.map(String), "target", "input"];
      section.querySelectorAll("table.compare tr").forEach((tr) => {
        const cells = new Map([...tr.children].filter((cell) => cell.dataset.col).map((cell) => [cell.dataset.col, cell]));
        tr.append(...keys.map((key) => cells.get(key)));
      });
      section.dataset.columns = order.join(",");
    }

    // Rows by a metric of the leftmost run, in the metric's direction; missing values last, ties by name.
    function sortRows() {
      const [metric, which] = $(".sort-rows").value.split(":");
      const values = metric ? (group.values[columns[0]] || {})[metric] : undefined;
      const sign = (data.metrics[metric] === "lower") === (which === "best") ? 1 : -1;
      const index = (row) => Number(row.dataset.row);
      const rows = [...body.rows].sort((a, b) => {
        if (!values) return index(a) - index(b);  // rendered in name order
        const x = values[index(a)], y = values[index(b)];
        return (x === null) - (y === null) || sign * (x - y) || index(a) - index(b);
      });
      body.append(...rows);
    }

    $(".sort-columns").addEventListener("change", (event) => {
      reorderColumns(event.target.value ? group.orders[event.target.value] : group.members);
      sortRows();
    });
    $(".sort-rows").addEventListener("change", sortRows);
    reorderColumns($(".sort-columns").value ? group.orders[$(".sort-columns").value] : group.members);
    viewer(section);
  }

  // Two images stacked pixel on pixel: "before" left of the split, "after" right of it, zoomed with crisp pixels.
  function viewer(section) {
    const $ = (selector) => section.querySelector(selector);
    const frame = $(".split-frame"), before = $("img.before"), after = $("img.after"), divider = $(".divider"), split = $(".viewer-split");
    const source = (column) => $(`tbody tr[data-row="${Number($(".viewer-image").value)}"] td[data-col="${column}"] img`).getAttribute("src");

    function setSplit(percent) {
      split.value = percent;
      after.style.clipPath = `inset(0 0 0 ${percent}%)`;
      divider.style.left = `${percent}%`;
      frame.dataset.split = percent;
    }
    function zoom() {
      const factor = Number($(".viewer-zoom").value);
      for (const img of [before, after]) {
        if (!img.naturalWidth) continue;
        img.style.width = `${img.naturalWidth * factor}px`;
        img.style.height = `${img.naturalHeight * factor}px`;
      }
    }
    function load() {
      before.src = source($(".viewer-before").value);
      after.src = source($(".viewer-after").value);
    }
    function fromPointer(event) {
      const box = frame.getBoundingClientRect();
      setSplit(Math.round(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * 100));
    }

    before.addEventListener("load", zoom);
    after.addEventListener("load", zoom);
    $(".viewer-zoom").addEventListener("change", zoom);
    split.addEventListener("input", () => setSplit(Number(split.value)));
    for (const name of [".viewer-image", ".viewer-before", ".viewer-after"]) $(name).addEventListener("change", load);
    frame.addEventListener("pointerdown", (event) => {
      frame.setPointerCapture(event.pointerId);
      fromPointer(event);
    });
    frame.addEventListener("pointermove", (event) => { if (event.buttons & 1) fromPointer(event); });
    $("tbody").addEventListener("click", (event) => {  // a row's name shows that image in the viewer
      const row = event.target.closest("td.name") && event.target.closest("tr");
      if (!row) return;
      $(".viewer-image").value = row.dataset.row;
      $(".viewer").open = true;
      load();
      $(".viewer").scrollIntoView();
    });
    setSplit(Number(split.value));
    load();
  }

  // Each run shows its last sample grid at or before the chosen step.
  function samples() {
    const slider = document.getElementById("step");
    if (!slider) return;
    const show = () => {
      const step = data.steps[Number(slider.value)];
      document.getElementById("step-label").textContent = step;
      document.querySelectorAll(".frames figure").forEach((figure) => {
        const frame = data.frames[Number(figure.dataset.run)].filter(([at]) => at <= step).pop();
        const img = figure.querySelector("img.frame");
        img.hidden = !frame;
        figure.querySelector(".no-frame").hidden = Boolean(frame);
        figure.querySelector(".frame-step").textContent = frame ? `step ${frame[0]}` : "";
        if (frame && img.getAttribute("src") !== frame[1]) img.src = frame[1];
        img.dataset.step = frame ? frame[0] : "";
      });
      document.body.dataset.step = step;
    };
    slider.addEventListener("input", show);
    show();
  }

  document.querySelectorAll("section.group").forEach((section) => table(section, data.groups[Number(section.dataset.group)]));
  samples();
  document.body.dataset.ready = "yes";
})();
