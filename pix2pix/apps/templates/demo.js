// The demo page: upload or draw an image, show the translation. Static (settings come from the JSON
// blob "config"), so the server's CSP can allow exactly this script by its hash.
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const inputImage = $("input-image"), outputImage = $("output-image");

function bytes(n) {
  return n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" : n >= 1e3 ? (n / 1e3).toFixed(0) + " kB" : n + " bytes";
}
function setState(state, text) {
  document.body.dataset.state = state;
  $("message").textContent = text || "";
  $("message").className = state === "error" ? "error" : "";
}

$("model").textContent = config.lab_colorization
  ? `Colorization (${config.direction}): the output keeps your image's resolution.`
  : `Direction ${config.direction}, trained on ${config.crop_size} px crops, ${config.eval_mode} mode.`;
$("limits").textContent = `PNG, JPEG, WebP, BMP, GIF or TIFF; at most ${bytes(config.max_bytes)} and ${config.max_pixels.toLocaleString("en")} pixels.`;
inputImage.onerror = () => inputImage.removeAttribute("src");

async function submit(blob, label) {
  if (blob.size > config.max_bytes) {
    return setState("error", `${label} is ${bytes(blob.size)}: the limit is ${bytes(config.max_bytes)}.`);
  }
  if (blob.type && !blob.type.startsWith("image/")) {
    return setState("error", `${label} is not an image (${blob.type}): choose a PNG, JPEG, WebP, BMP, GIF or TIFF file.`);
  }
  inputImage.src = URL.createObjectURL(blob);
  outputImage.removeAttribute("src");
  setState("busy", `translating ${label}…`);
  try {
    const response = await fetch("translate", {
      method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    if (!response.ok) {
      let reason = `${response.status} ${response.statusText}`;
      try { reason = (await response.json()).error || reason; } catch (ignored) {}
      return setState("error", `${label}: ${reason}`);
    }
    const url = URL.createObjectURL(await response.blob());
    await new Promise((resolve, reject) => { outputImage.onload = resolve; outputImage.onerror = reject; outputImage.src = url; });
    setState("done", `${label}: ${outputImage.naturalWidth}×${outputImage.naturalHeight} translated.`);
  } catch (error) {
    setState("error", `${label}: the request failed (${error && error.message || "no answer from the server"}).`);
  }
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) submit(file, file.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) submit(file, file.name);
});

if (config.drawing) {
  $("draw-panel").hidden = false;
  const canvas = $("canvas"), context = canvas.getContext("2d");
  canvas.width = canvas.height = config.canvas_size;
  const clear = () => { context.fillStyle = "#ffffff"; context.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => { canvas.setPointerCapture(event.pointerId); last = point(event); });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    context.strokeStyle = $("colour").value;
    context.lineWidth = Number($("brush").value) * canvas.width / 320;
    context.lineCap = context.lineJoin = "round";
    context.beginPath(); context.moveTo(...last); context.lineTo(...next); context.stroke();
    last = next;
  });
  canvas.addEventListener("pointerup", () => { last = null; });
  $("clear").addEventListener("click", clear);
  $("translate-drawing").addEventListener("click", () => canvas.toBlob((blob) => submit(blob, "drawing"), "image/png"));
}
