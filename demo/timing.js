// How the demo times a call: the median of repeated calls after warm-up.

/**
 * Median milliseconds of `fn()`: warm-up calls first (V8 compiles wasm with
 * a baseline compiler and tiers hot functions up in the background), then
 * samples up to ~120 ms (3 to 25), each of enough calls to last about a
 * millisecond (the browser's clock may tick in steps of 0.1 ms). At most
 * `maxCalls` calls in all (at least 5).
 */
export function time(fn, maxCalls = 10_000) {
  let calls = 0;
  const warm = performance.now();
  while (calls < 2 || (calls < Math.min(10, maxCalls - 3) && performance.now() - warm < 40)) {
    fn();
    calls++;
  }
  const perCall = Math.max(1e-4, (performance.now() - warm) / calls);
  const batch = Math.max(1, Math.min(Math.ceil(1 / perCall), Math.floor((maxCalls - calls) / 3)));
  const times = [];
  const start = performance.now();
  while (times.length < 3 || (times.length < 25 && calls + batch <= maxCalls && performance.now() - start < 120)) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    times.push((performance.now() - t0) / batch);
    calls += batch;
  }
  return median(times);
}

/** The middle value (the upper middle of an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

export function format(ms) {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : ms >= 0.1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;
}
