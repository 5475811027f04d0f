// The demo page: upload or draw an image, show the translation. Static (settings come from the JSON
// blob "config"), so the server's CSP can allow exactly this script by its hash.
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const inputImage = $("input-image"), outputImage = $("output-image");
const FRAME = 320;  // px: the frames' inner size; images are scaled to fit it, small ones up

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
  : config.palette
  ? `Labels to photo (${config.palette.name} classes, ${config.direction}): paint the classes on the canvas, trained on ${config.crop_size} px crops, ${config.eval_mode} mode.`
  : `Direction ${config.direction}, trained on ${config.crop_size} px crops, ${config.eval_mode} mode.`;
$("limits").textContent = `PNG, JPEG, WebP, BMP, GIF or TIFF; at most ${bytes(config.max_bytes)} and ${config.max_pixels.toLocaleString("en")} pixels.`;
inputImage.onerror = () => inputImage.removeAttribute("src");

// The scale that fits an image into a frame (and the before/after view): the same for input and output.
const frameScale = (image) => FRAME / Math.max(image.naturalWidth, image.naturalHeight);
function fit(image) {
  const scale = frameScale(image);
  image.style.width = `${image.naturalWidth * scale}px`;
  image.style.height = `${image.naturalHeight * scale}px`;
  image.classList.toggle("enlarged", scale > 1);  // crisp pixels, not a blur
}

let upload = null;  // {blob, label}: the image being translated
const hints = [];  // a hint model's hints {x, y, color, size}, in the upload's own pixels (the X-Hints header)
let requesting = false, requestAgain = false;

function replaceUrl(image, url) {
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  if (url) image.src = url; else image.removeAttribute("src");
}

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
  $("compare-panel").hidden = $("download").hidden = true;
  column = null;
  $("download").removeAttribute("href");
  replaceUrl(outputImage, null);
  if (config.grey_input) {
    replaceUrl(inputImage, null);
    showGrey(upload);
  } else {
    replaceUrl(inputImage, URL.createObjectURL(blob));
  }
  translate();
}

// A colorization model sees only L: the server computes that grey exactly as the model's input.
async function showGrey(sent) {
  try {
    const response = await fetch("grey", { method: "POST", body: sent.blob, headers: { "Content-Type": sent.blob.type || "application/octet-stream" } });
    if (response.ok && upload === sent) replaceUrl(inputImage, URL.createObjectURL(await response.blob()));
  } catch (ignored) {}  // the translation reports what went wrong
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
    const download = $("download");
    download.href = url;  // the PNG the server sent, saved as is
    download.download = `${label.replace(/\.[^.]*$/, "")}-translated.png`;
    download.hidden = false;
    if (!requestAgain) setState("done", `${described}: ${outputImage.naturalWidth}×${outputImage.naturalHeight} translated.`);
  } catch (error) {
    if (!requestAgain) setState("error", `${described}: the request failed (${error && error.message || "no answer from the server"}).`);
  }
}

inputImage.addEventListener("load", () => { fit(inputImage); showCompare(); });
outputImage.addEventListener("load", () => { fit(outputImage); showCompare(); });

// Before/after: the output over the input at the same scale, cut at a column boundary of the images.
const compare = $("compare"), handle = $("compare-handle"), compareInput = $("compare-input"), compareOutput = $("compare-output");
let column = null;  // columns of output shown, from the left; null until an upload is compared

function showCompare() {
  const [width, height] = [inputImage.naturalWidth, inputImage.naturalHeight];
  const ready = inputImage.complete && outputImage.complete && width > 0 && width === outputImage.naturalWidth && height === outputImage.naturalHeight;
  $("compare-panel").hidden = !ready;
  if (!ready) return;
  const scale = frameScale(inputImage);
  compareInput.src = inputImage.src;
  compareOutput.src = outputImage.src;
  Object.assign(compare.style, { width: `${width * scale}px`, height: `${height * scale}px` });
  compare.classList.toggle("enlarged", scale > 1);
  handle.setAttribute("aria-valuemax", width);
  setColumn(column ?? width / 2);  // a new upload starts in the middle
}

function setColumn(value) {
  const width = inputImage.naturalWidth, scale = frameScale(inputImage);
  column = Math.min(width, Math.max(0, Math.round(value)));
  compareOutput.style.clipPath = `inset(0 ${(width - column) * scale}px 0 0)`;
  handle.style.left = `${column * scale}px`;
  handle.setAttribute("aria-valuenow", column);
  handle.setAttribute("aria-valuetext", `output in the first ${column} of ${width} columns, input in the rest`);
}

const columnAt = (event) => (event.clientX - compare.getBoundingClientRect().left) / frameScale(inputImage);
let dragging = false;
compare.addEventListener("pointerdown", (event) => {
  dragging = true;
  compare.setPointerCapture(event.pointerId);
  handle.focus();
  setColumn(columnAt(event));
  event.preventDefault();
});
compare.addEventListener("pointermove", (event) => { if (dragging) setColumn(columnAt(event)); });
compare.addEventListener("pointerup", () => { dragging = false; });
handle.addEventListener("keydown", (event) => {
  const width = inputImage.naturalWidth, page = Math.max(1, Math.round(width / 10));
  const moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -page, PageUp: page, Home: -width, End: width };
  if (!(event.key in moves)) return;
  setColumn(column + moves[event.key]);
  event.preventDefault();
});

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
  inputImage.addEventListener("load", () => {
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

// Drawing: square brushes on whole canvas pixels, never anti-aliased, so a label map holds only its classes' colours.
if (config.drawing) {
  $("draw-panel").hidden = false;
  const canvas = $("canvas"), context = canvas.getContext("2d"), brush = $("brush");
  canvas.width = canvas.height = config.canvas_size;
  brush.max = Math.max(1, Math.round(config.canvas_size / 4));
  brush.value = Math.max(1, Math.round(config.canvas_size / 32));
  const showBrush = () => { $("brush-size").textContent = `${brush.value} px`; };
  brush.addEventListener("input", showBrush);
  showBrush();
  let colour = () => $("colour").value;
  let background = "#ffffff";
  if (config.palette) {
    const classes = config.palette.classes, buttons = $("classes");
    background = classes[0].color;
    let chosen = classes[Math.min(1, classes.length - 1)].color;  // the background is already there
    colour = () => chosen;
    buttons.replaceChildren(...classes.map(({ name, color }) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "label-class";
      button.dataset.color = color;
      button.setAttribute("aria-pressed", String(color === chosen));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      button.append(swatch, ` ${name}`);
      button.addEventListener("click", () => {
        chosen = color;
        for (const other of buttons.children) other.setAttribute("aria-pressed", String(other === button));
      });
      return button;
    }));
    buttons.hidden = false;
    $("free-colour").hidden = true;
  }
  const clear = () => { context.fillStyle = background; context.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  const stamp = ([x, y]) => {
    const side = Number(brush.value);
    context.fillRect(Math.round(x - side / 2), Math.round(y - side / 2), side, side);
  };
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    context.fillStyle = colour();
    stamp(last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event), steps = Math.ceil(Math.max(Math.abs(next[0] - last[0]), Math.abs(next[1] - last[1])));
    context.fillStyle = colour();
    for (let step = 1; step <= steps; step++) {
      stamp([last[0] + (next[0] - last[0]) * step / steps, last[1] + (next[1] - last[1]) * step / steps]);
    }
    last = next;
  });
  canvas.addEventListener("pointerup", () => { last = null; });
  $("clear").addEventListener("click", clear);
  $("translate-drawing").addEventListener("click", () => canvas.toBlob((blob) => submit(blob, "drawing"), "image/png"));
}
