// The demo's heatmaps: attention weights (one head, or several tiled) and
// masks drawn into canvases, cell by cell, on the viridis ramp (linear or
// log scale), and the ramp's colour bar.

/** Viridis anchors (t = 0, 1/8, ..., 1). */
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
const ZERO = [14, 14, 22];
/** Log scale: 10^-LOG_DECADES maps to the bottom of the ramp. */
const LOG_DECADES = 4;

/** The viridis colour at t in [0, 1]. */
function ramp(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** The position on the ramp of weight w (magnitude; rfa's weights can be negative). */
function toneOf(w, scale, max) {
  const m = Math.abs(w);
  if (scale === 'linear') return max > 0 ? m / max : 0;
  return 1 + Math.log10(m) / LOG_DECADES;
}

/** The colour ramp into `canvas`, its labels (linear or log scale) into the element `labelRow`. */
export function drawColorbar(canvas, labelRow, scale) {
  const g = canvas.getContext('2d');
  for (let x = 0; x < canvas.width; x++) {
    const [r, gr, b] = ramp(x / (canvas.width - 1));
    g.fillStyle = `rgb(${r | 0},${gr | 0},${b | 0})`;
    g.fillRect(x, 0, 1, canvas.height);
  }
  const labels = scale === 'log' ? ['≤1e-4', '1e-3', '1e-2', '0.1', '1'] : ['0', '', 'max / 2', '', 'max'];
  labelRow.replaceChildren(...labels.map((text) => Object.assign(document.createElement('span'), { textContent: text })));
}

/**
 * Draws the `[rows, cols]` matrix starting at `offset` of `data` into the
 * canvas, one cell per value, scaled to the canvas without smoothing.
 */
export function drawMatrix(canvas, data, offset, rows, cols, scale) {
  let max = 0;
  for (let i = 0; i < rows * cols; i++) max = Math.max(max, Math.abs(data[offset + i]));
  const image = new ImageData(Math.max(1, cols), Math.max(1, rows));
  for (let i = 0; i < rows * cols; i++) {
    const w = data[offset + i];
    const [r, g, b] = w === 0 ? ZERO : ramp(toneOf(w, scale, max));
    image.data.set([r, g, b, 255], 4 * i);
  }
  blit(canvas, image);
}

/**
 * Draws several heads' `[rows, cols]` matrices tiled in a square grid (one
 * colour scale for all), separated by a gap of background.
 */
export function drawTiled(canvas, data, heads, rows, cols, scale) {
  const across = Math.ceil(Math.sqrt(heads.length));
  const down = Math.ceil(heads.length / across);
  const gap = Math.max(2, Math.round(Math.max(rows, cols) / 24));
  const width = across * cols + (across - 1) * gap;
  const height = down * rows + (down - 1) * gap;
  let max = 0;
  for (const h of heads) for (let i = 0; i < rows * cols; i++) max = Math.max(max, Math.abs(data[h * rows * cols + i]));
  const image = new ImageData(width, height);
  image.data.fill(255);
  heads.forEach((h, t) => {
    const x0 = (t % across) * (cols + gap);
    const y0 = Math.floor(t / across) * (rows + gap);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const w = data[(h * rows + i) * cols + j];
        const [r, g, b] = w === 0 ? ZERO : ramp(toneOf(w, scale, max));
        image.data.set([r, g, b, 255], 4 * ((y0 + i) * width + x0 + j));
      }
    }
  });
  blit(canvas, image);
}

/** A 0/1 mask `[rows, cols]` into the canvas: visible pairs light, hidden dark. */
export function drawMask(canvas, mask, rows, cols) {
  const image = new ImageData(Math.max(1, cols), Math.max(1, rows));
  for (let i = 0; i < rows * cols; i++) image.data.set(mask[i] ? [246, 196, 83, 255] : [28, 28, 44, 255], 4 * i);
  blit(canvas, image);
}

/** The image into the canvas at the canvas's device pixel size, without smoothing. */
function blit(canvas, image) {
  const scratch = new OffscreenCanvas(image.width, image.height);
  scratch.getContext('2d').putImageData(image, 0, 0);
  const ratio = window.devicePixelRatio || 1;
  const size = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(size.width * ratio));
  canvas.height = Math.max(1, Math.round(size.height * ratio));
  const g = canvas.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}
