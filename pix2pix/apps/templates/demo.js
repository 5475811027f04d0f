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

$("model").textContent = config.hints
  ? `Colorization with colour hints (${config.direction}): click the grey image to give a colour; the output keeps your image's resolution.`
  : config.lab_colorization
  ? `Colorization (${config.direction}): the output keeps your image's resolution.`
  : `Direction ${config.direction}, trained on ${config.crop_size} px crops, ${config.eval_mode} mode.`;
$("limits").textContent = `PNG, JPEG, WebP, BMP, GIF or TIFF; at most ${bytes(config.max_bytes)} and ${config.max_pixels.toLocaleString("en")} pixels.`;
inputImage.onerror = () => inputImage.removeAttribute("src");

let upload = null;  // {blob, label}: the image being translated
const hints = [];  // a hint model's hints {x, y, color, size}, in the upload's own pixels (the X-Hints header)
let requesting = false, requestAgain = false;

async function submit(blob, label) {
  if (blob.size > config.max_bytes) {
    return setState("error", `${label} is ${bytes(blob.size)}: the limit is ${bytes(config.max_bytes)}.`);
  }
  if (blob.type && !blob.type.startsWith("image/")) {
    return setState("error", `${label} is not an image (${blob.type}): choose a PNG, JPEG, WebP, BMP, GIF or TIFF file.`);
  }
  upload = { blob, label };
  hints.length = 0;
  showHints();
  if (inputImage.src.startsWith("blob:")) URL.revokeObjectURL(inputImage.src);
  inputImage.src = URL.createObjectURL(blob);
  outputImage.removeAttribute("src");
  translate();
}

// One request at a time: changes made meanwhile are sent together once it is answered.
async function translate() {
  if (!upload) return;
  setState("busy", `translating ${upload.label}…`);
  if (requesting) { requestAgain = true; return; }
  requesting = true;
  do {
    requestAgain = false;
    await translateOnce({ ...upload }, hints.map((hint) => ({ ...hint })));
  } while (requestAgain);
  requesting = false;
}

async function translateOnce({ blob, label }, sentHints) {
  const headers = { "Content-Type": blob.type || "application/octet-stream" };
  if (sentHints.length) headers["X-Hints"] = JSON.stringify(sentHints);
  const described = config.hints ? `${label} with ${sentHints.length} hint${sentHints.length === 1 ? "" : "s"}` : label;
  try {
    const response = await fetch("translate", { method: "POST", body: blob, headers });
    if (requestAgain) return;  // outdated: the next request follows
    if (!response.ok) {
      let reason = `${response.status} ${response.statusText}`;
      try { reason = (await response.json()).error || reason; } catch (ignored) {}
      return setState("error", `${described}: ${reason}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const previous = outputImage.src;
    await new Promise((resolve, reject) => { outputImage.onload = resolve; outputImage.onerror = reject; outputImage.src = url; });
    if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    if (!requestAgain) setState("done", `${described}: ${outputImage.naturalWidth}×${outputImage.naturalHeight} translated.`);
  } catch (error) {
    if (!requestAgain) setState("error", `${described}: the request failed (${error && error.message || "no answer from the server"}).`);
  }
}

function showHints() {
  const items = hints.map((hint, index) => {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = hint.color;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "remove";
    remove.addEventListener("click", () => { hints.splice(index, 1); showHints(); translate(); });
    const item = document.createElement("li");
    item.append(swatch, ` x ${hint.x}, y ${hint.y}, ${hint.color}, ${hint.size} px `, remove);
    return item;
  });
  $("hint-list").replaceChildren(...items);
  const [width, height] = [inputImage.naturalWidth, inputImage.naturalHeight];
  $("markers").replaceChildren(...hints.map((hint) => {
    const marker = document.createElement("span");
    marker.className = "marker";
    Object.assign(marker.style, {
      left: `${(hint.x + 0.5) / width * 100}%`, top: `${(hint.y + 0.5) / height * 100}%`,
      width: `${hint.size / width * 100}%`, height: `${hint.size / height * 100}%`, background: hint.color,
    });
    return marker;
  }));
  $("clear-hints").disabled = !hints.length;
}

if (config.hints) {
  document.body.classList.add("hinting");
  $("hint-panel").hidden = false;
  const size = $("hint-size");
  size.max = config.max_hint_size;
  const fit = (image) => {  // small images are scaled up, so that a click can pick a pixel
    const scale = 320 / Math.max(image.naturalWidth, image.naturalHeight);
    image.style.width = `${image.naturalWidth * scale}px`;
    image.style.height = `${image.naturalHeight * scale}px`;
  };
  outputImage.addEventListener("load", () => fit(outputImage));
  inputImage.addEventListener("load", () => {
    fit(inputImage);
    // New hints cover about 5 px of the network's frame (the middle of training's 1-9 px squares).
    const shrink = Math.max(1, Math.max(inputImage.naturalWidth, inputImage.naturalHeight) / config.color_side);
    size.value = Math.min(config.max_hint_size, Math.round(5 * shrink));
  });
  inputImage.addEventListener("click", (event) => {
    if (!inputImage.naturalWidth) return;  // not loaded (or not an image)
    if (hints.length >= config.max_hints) return setState("error", `At most ${config.max_hints} hints: remove one first.`);
    const box = inputImage.getBoundingClientRect(), width = inputImage.naturalWidth, height = inputImage.naturalHeight;
    const pixel = (offset, extent, natural) => Math.min(natural - 1, Math.max(0, Math.floor(offset * natural / extent)));
    hints.push({
      x: pixel(event.clientX - box.left, box.width, width), y: pixel(event.clientY - box.top, box.height, height),
      color: $("hint-colour").value, size: Math.min(config.max_hint_size, Math.max(1, Math.round(Number(size.value)) || 1)),
    });
    showHints();
    translate();
  });
  $("clear-hints").addEventListener("click", () => { hints.length = 0; showHints(); translate(); });
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
