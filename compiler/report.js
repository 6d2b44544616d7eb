// The compiler report's viewer (compiler/inspect.py inlines this file): pan and zoom the
// kernel graph, search kernels by layer, op or name, and open a kernel's op graph in a side
// panel (a click, or zooming in far on it). Written for this page; no library.
"use strict";
(function () {
  const svg = document.getElementById("graph");
  const view = document.getElementById("viewport");
  const panel = document.getElementById("panel");
  const search = document.getElementById("search");
  const width = Number(svg.dataset.width), height = Number(svg.dataset.height);
  const kernels = Array.from(svg.querySelectorAll(".kernel"));
  let scale = 1, tx = 0, ty = 0, matches = [], current = -1;
  let initial = () => fit(false, true), touched = false;  // the first view, kept on resizes

  function apply() {
    view.setAttribute("transform", `translate(${tx},${ty}) scale(${scale})`);
    svg.classList.toggle("far", scale < 0.7);
  }
  function box() { return svg.getBoundingClientRect(); }
  // all: the whole graph in the window; else the width, but never so small that the labels
  // cannot be read (READABLE), centred (the main column of a graph runs down its middle)
  const READABLE = 0.85;
  function fit(all, readable) {
    const r = box();
    const s = Math.min((r.width - 20) / width, all ? (r.height - 20) / height : 1.0);
    scale = Math.max(s, readable ? READABLE : 0.02);
    tx = (r.width - width * scale) / 2;
    ty = height * scale < r.height ? (r.height - height * scale) / 2 : 10;
    apply();
  }
  function zoomAt(factor, cx, cy) {
    const s = Math.min(Math.max(scale * factor, 0.02), 8);
    tx = cx - (cx - tx) * (s / scale);
    ty = cy - (cy - ty) * (s / scale);
    scale = s;
    apply();
    if (scale >= 2.5) openNearest(cx, cy);
  }
  function centreOn(g, s) {
    const r = box(), x = Number(g.dataset.x), y = Number(g.dataset.y);
    const covered = panel.classList.contains("open") ? panel.offsetWidth : 0;
    scale = Math.max(scale, s);
    tx = (r.width - covered) / 2 - x * scale;
    ty = r.height / 2 - y * scale;
    apply();
  }
  function openNearest(cx, cy) {
    const gx = (cx - tx) / scale, gy = (cy - ty) / scale;
    let best = null, dist = Infinity;
    for (const g of kernels) {
      const d = Math.hypot(Number(g.dataset.x) - gx, Number(g.dataset.y) - gy);
      if (d < dist) { dist = d; best = g; }
    }
    if (best && dist < 150) open(best);
  }
  function open(g) {
    kernels.forEach(k => k.classList.remove("selected"));
    g.classList.add("selected");
    const t = document.getElementById("kt-" + g.dataset.k);
    panel.innerHTML = "";
    const close = document.createElement("button");
    close.className = "close";
    close.textContent = "close (Esc)";
    close.onclick = () => panel.classList.remove("open");
    panel.appendChild(close);
    panel.appendChild(t.content.cloneNode(true));
    panel.classList.add("open");
  }
  function find(query) {
    const q = query.trim().toLowerCase();
    matches = [];
    current = -1;
    for (const g of svg.querySelectorAll(".kernel, .input, .edge")) {
      g.classList.remove("match", "dim");
    }
    if (!q) return;
    for (const g of kernels) {
      if (g.dataset.search.includes(q)) { g.classList.add("match"); matches.push(g); }
      else g.classList.add("dim");
    }
    for (const g of svg.querySelectorAll(".input, .edge")) g.classList.add("dim");
    document.getElementById("count").textContent = `${matches.length} kernels`;
  }
  function next() {
    if (!matches.length) return;
    current = (current + 1) % matches.length;
    centreOn(matches[current], 0.9);
  }

  let drag = null, moved = false;
  svg.addEventListener("pointerdown", e => {
    drag = { x: e.clientX, y: e.clientY, tx, ty };
    moved = false;
    svg.classList.add("dragging");
  });
  window.addEventListener("pointermove", e => {
    if (!drag) return;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) moved = true;
    touched = true;
    tx = drag.tx + e.clientX - drag.x;
    ty = drag.ty + e.clientY - drag.y;
    apply();
  });
  window.addEventListener("pointerup", () => { drag = null; svg.classList.remove("dragging"); });
  svg.addEventListener("wheel", e => {
    e.preventDefault();
    touched = true;
    const r = box();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  for (const g of kernels) {
    g.addEventListener("click", () => { if (!moved) open(g); });
    g.addEventListener("dblclick", () => { centreOn(g, 2); open(g); });
  }
  search.addEventListener("input", () => find(search.value));
  search.addEventListener("keydown", e => { if (e.key === "Enter") next(); });
  document.getElementById("fit-all").onclick = () => fit(true);
  document.getElementById("fit-width").onclick = () => fit(false);
  document.getElementById("zoom-in").onclick = () => zoomAt(1.25, box().width / 2, box().height / 2);
  document.getElementById("zoom-out").onclick = () => zoomAt(0.8, box().width / 2, box().height / 2);
  window.addEventListener("keydown", e => {
    if (e.key === "Escape") panel.classList.remove("open");
  });
  window.addEventListener("resize", () => { if (!touched) initial(); });
  document.addEventListener("click", e => {  // "details" links open the kernel's section
    const a = e.target.closest("a[data-open]");
    if (a) document.getElementById(a.dataset.open).open = true;
  });

  // sources are stored deflated and base64-encoded; inflate one when it is first opened
  for (const d of document.querySelectorAll("details[data-z]")) {
    d.addEventListener("toggle", async () => {
      if (!d.open || d.dataset.done) return;
      d.dataset.done = "1";
      const pre = d.querySelector("pre");
      try {
        const bytes = Uint8Array.from(atob(d.dataset.z), c => c.charCodeAt(0));
        const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
        pre.textContent = await new Response(stream).text();
      } catch (err) {
        pre.textContent = "this browser cannot inflate the stored source: " + err;
      }
    });
  }
  // the address can ask for a view (the docs' screenshots use it): #all, #find=TEXT,
  // #open=K (kernel K's panel), #at=K (centred on kernel K), joined by "&"
  for (const part of decodeURIComponent(location.hash.slice(1)).split("&")) {
    const [key, value] = part.split("=");
    const g = kernels.find(k => k.dataset.k === value);
    if (key === "all") initial = () => fit(true);
    else if (key === "find") {
      search.value = value;
      find(value);
      initial = () => { fit(false, true); current = -1; next(); };
    }
    else if (key === "open" && g) open(g);
    else if (key === "at" && g) initial = () => { fit(false, true); centreOn(g, 1); };
  }
  initial();
})();
