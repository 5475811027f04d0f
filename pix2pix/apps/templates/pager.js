// The report's image table, a page at a time, built from the JSON blob: static, so the page's CSP can allow
// exactly this script by its hash.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PER_PAGE = data.per_page;
  const KINDS = ["inputs", "outputs", "targets"];
  const rows = data.rows;  // [name, quoted src prefix, ...metric values]
  const pageCount = Math.max(1, Math.ceil(rows.length / PER_PAGE));
  const $ = (id) => document.getElementById(id);
  const body = document.querySelector("#images tbody");
  const byName = new Intl.Collator(undefined, { numeric: true });  // img2 before img10
  let generation = 0;

  function state() {
    const params = new URLSearchParams(location.hash.slice(1));
    const page = Math.min(Math.max(parseInt(params.get("page"), 10) || 1, 1), pageCount);
    const sort = [...$("sort").options].some((o) => o.value === params.get("sort")) ? params.get("sort") : "name:asc";
    return { page, sort };
  }

  function go(change) {
    const next = { ...state(), ...change };
    location.hash = new URLSearchParams({ page: next.page, sort: next.sort }).toString();
  }

  function sorted(sort) {
    const [column, direction] = sort.split(":");
    if (column === "name") return [...rows].sort((a, b) => byName.compare(a[0], b[0]));
    const index = 2 + data.columns.indexOf(column);
    const sign = direction === "desc" ? -1 : 1;
    // Missing values (null) go last whatever the direction.
    return [...rows].sort((a, b) => (a[index] === null) - (b[index] === null) || sign * (a[index] - b[index]));
  }

  function cell(className, child) {
    const td = document.createElement("td");
    td.className = className;
    if (typeof child === "string") td.textContent = child; else td.append(child);
    return td;
  }

  function image(src, alt) {
    const link = document.createElement("a");
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = alt;
    img.src = link.href = src;
    link.append(img);
    return link;
  }

  function render() {
    const { page, sort } = state();
    const start = (page - 1) * PER_PAGE;
    const shown = sorted(sort).slice(start, start + PER_PAGE);
    body.replaceChildren(...shown.map((row) => {
      const tr = document.createElement("tr");
      tr.append(cell("name", row[0]));
      KINDS.forEach((kind) => tr.append(cell("img", image(`${row[1]}-${kind}.png`, `${row[0]} ${kind}`))));
      row.slice(2).forEach((value) => tr.append(cell("num", value === null ? "–" : value.toFixed(4))));
      return tr;
    }));
    $("page").value = page;
    $("page").max = pageCount;
    $("pages").textContent = pageCount;
    $("sort").value = sort;
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pageCount;
    $("range").textContent = rows.length ? `rows ${start + 1}–${start + shown.length} of ${rows.length}` : "no images";
    document.body.dataset.page = page;
    document.body.dataset.rows = shown.length;
    watchImages();
  }

  // Marks <body data-images="loaded:N"> once every image on the page (plot included) has decoded,
  // or "broken:K/N" if some failed: a hook for the browser test and for anyone debugging a report.
  function watchImages() {
    const token = ++generation;
    const images = [...document.images];
    document.body.dataset.images = "loading";
    const settled = (img) => img.complete ? Promise.resolve() : new Promise((done) => {
      img.addEventListener("load", done, { once: true });
      img.addEventListener("error", done, { once: true });
    });
    Promise.all(images.map(settled)).then(() => {
      if (token !== generation) return;
      const broken = images.filter((img) => !(img.naturalWidth > 0)).length;
      document.body.dataset.images = broken ? `broken:${broken}/${images.length}` : `loaded:${images.length}`;
    });
  }

  $("prev").addEventListener("click", () => go({ page: state().page - 1 }));
  $("next").addEventListener("click", () => go({ page: state().page + 1 }));
  $("page").addEventListener("change", (event) => go({ page: parseInt(event.target.value, 10) || 1 }));
  $("sort").addEventListener("change", (event) => go({ page: 1, sort: event.target.value }));
  window.addEventListener("hashchange", render);
  render();
})();
