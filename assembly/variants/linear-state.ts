// The recurrent state of `linear` (attn.linearState): causal linear attention
// one token at a time, for `slices` (batch, head) pairs at once. float64
// S [F][Dv] and z [F] per slice, and the log scale of each (running maximum
// of the key offsets; -inf before the first real key). O(F Dv) per token and
// slice, whatever the position. Mirrors src/variants/linear-state.ts; the
// batch kernels are in linear.ts, the float64 math in src/reference/linear.ts.
import { BLOCK_HEADER, FAVOR, featurise, floats, mapOf, writeMap } from '../core/features';
import { at, at64 } from '../core/memory';

const NEG_INF: f32 = -Infinity;

@unmanaged class State {
  slices: i32;
  H: i32;
  Dv: i32;
  /** Floats between two heads' transposed projections (0: shared). */
  wtHeadStride: i32;
  logEps: f64;
  wt: usize; // projections of head 0, [D][M] each
  s64: usize; // [slices][F][Dv] f64
  z64: usize; // [slices][F] f64
  off: usize; // [slices] f32
  phiK: usize; // [F]
  phiQ: usize; // [F]
  kOff: usize; // [4]
  qOff: usize; // [4]
  vt: usize; // [Dv] f64
  num: usize; // [Dv] f64
}

/** Bytes of a recurrent state block (`wtFloats`: the transposed projections, all heads). */
export function linearStateBytes(slices: i32, F: i32, Dv: i32, wtFloats: i32): f64 {
  const sl = <f64>slices;
  return <f64>BLOCK_HEADER + floats(<f64>wtFloats) + floats(sl * F * Dv * 2) + floats(sl * F * 2) + floats(sl) + 2 * floats(<f64>F) + 2 * floats(4) + 2 * floats(<f64>Dv * 2);
}

/** Where the transposed projections go in a state block (bytes from its start): the caller copies them there before linearStateInit. */
export function linearStateProjection(): i32 {
  return <i32>BLOCK_HEADER;
}

/** Lays out a state block (projections already at linearStateProjection()) and empties it. */
export function linearStateInit(st: usize, slices: i32, H: i32, kind: i32, D: i32, Dv: i32, F: i32, M: i32, wtFloats: i32, wtHeadStride: i32, scale: f32, logEps: f64): void {
  const s = changetype<State>(st);
  // each step points the map at its slice's head's projection
  writeMap(st, kind, D, F, M, 0, scale);
  s.slices = slices;
  s.H = H;
  s.Dv = Dv;
  s.wtHeadStride = wtHeadStride;
  s.logEps = logEps;
  const sl = <f64>slices;
  let ptr = st + BLOCK_HEADER;
  s.wt = ptr; ptr += <usize>floats(<f64>wtFloats);
  s.s64 = ptr; ptr += <usize>floats(sl * F * Dv * 2);
  s.z64 = ptr; ptr += <usize>floats(sl * F * 2);
  s.off = ptr; ptr += <usize>floats(sl);
  s.phiK = ptr; ptr += <usize>floats(<f64>F);
  s.phiQ = ptr; ptr += <usize>floats(<f64>F);
  s.kOff = ptr; ptr += <usize>floats(4);
  s.qOff = ptr; ptr += <usize>floats(4);
  s.vt = ptr; ptr += <usize>floats(<f64>Dv * 2);
  s.num = ptr;
  linearStateReset(st);
}

/** Forgets every key: empty sums, no scale yet. */
export function linearStateReset(st: usize): void {
  const s = changetype<State>(st);
  const p = mapOf(st);
  memory.fill(s.s64, 0, <usize>s.slices * <usize>p.F * <usize>s.Dv * 8);
  memory.fill(s.z64, 0, <usize>s.slices * <usize>p.F * 8);
  for (let i = 0; i < s.slices; i++) store<f32>(at(s.off, i), NEG_INF);
}

/**
 * One token for slices [s0, s1) (slice = b * H + h): q, k [slices][D], v and
 * out [slices][Dv]; pad: u8 [B] (0 = this batch's key is padding) or 0.
 * Adds the key and value to the state, then answers the query.
 */
export function linearStep(st: usize, q: usize, k: usize, v: usize, pad: usize, out: usize, s0: i32, s1: i32): void {
  const s = changetype<State>(st);
  const p = mapOf(st);
  const D = p.D;
  const F = p.F;
  const Dv = s.Dv;
  const favor = p.kind == FAVOR;
  for (let slice = s0; slice < s1; slice++) {
    p.wt = s.wt + (<usize>((slice % s.H) * s.wtHeadStride) << 2);
    const S = at64(s.s64, slice * F * Dv);
    const z = at64(s.z64, slice * F);
    const offAt = at(s.off, slice);
    if (pad == 0 || load<u8>(pad + <usize>(slice / s.H)) != 0) {
      featurise(p, at(k, slice * D), 1, s.phiK, s.kOff);
      const old = load<f32>(offAt);
      const o = load<f32>(s.kOff);
      const top = max(old, o);
      // running maximum: the old sums decay to the new scale (0 before the first key)
      const decay: f64 = old == NEG_INF ? 0 : (old == top ? 1 : Math.exp(<f64>old - <f64>top));
      const gain: f64 = o == top ? 1 : Math.exp(<f64>o - <f64>top);
      store<f32>(offAt, top);
      for (let e = 0; e < Dv; e++) store<f64>(at64(s.vt, e), <f64>load<f32>(at(v, slice * Dv + e)));
      for (let f = 0; f < F; f++) {
        const c = gain * <f64>load<f32>(at(s.phiK, f));
        const zf = at64(z, f);
        store<f64>(zf, load<f64>(zf) * decay + c);
        const row = at64(S, f * Dv);
        rowUpdate64(row, s.vt, Dv, decay, c);
      }
    }
    const dst = at(out, slice * Dv);
    const K = load<f32>(offAt);
    if (K == NEG_INF) {
      memory.fill(dst, 0, <usize>Dv << 2);
      continue;
    }
    featurise(p, at(q, slice * D), 1, s.phiQ, s.qOff);
    const qOff = load<f32>(s.qOff);
    memory.fill(s.num, 0, <usize>Dv << 3);
    let den: f64 = Math.exp(favor ? s.logEps - <f64>qOff - <f64>K : s.logEps);
    for (let f = 0; f < F; f++) {
      const w = <f64>load<f32>(at(s.phiQ, f));
      den += w * load<f64>(at64(z, f));
      rowAxpy64(s.num, at64(S, f * Dv), Dv, w);
    }
    const inv: f64 = den != 0 ? 1 / den : 0;
    for (let e = 0; e < Dv; e++) store<f32>(at(dst, e), <f32>(load<f64>(at64(s.num, e)) * inv));
  }
}

/** row[e] = row[e] * decay + c * v[e] (float64). */
function rowUpdate64(row: usize, v: usize, n: i32, decay: f64, c: f64): void {
  const cv = f64x2.splat(c);
  let e = 0;
  if (decay == 1) {
    for (; e + 2 <= n; e += 2) v128.store(at64(row, e), f64x2.add(v128.load(at64(row, e)), f64x2.mul(cv, v128.load(at64(v, e)))));
  } else {
    const dv = f64x2.splat(decay);
    for (; e + 2 <= n; e += 2) v128.store(at64(row, e), f64x2.add(f64x2.mul(v128.load(at64(row, e)), dv), f64x2.mul(cv, v128.load(at64(v, e)))));
  }
  for (; e < n; e++) store<f64>(at64(row, e), load<f64>(at64(row, e)) * decay + c * load<f64>(at64(v, e)));
}

/** acc[e] += w * row[e] (float64). */
function rowAxpy64(acc: usize, row: usize, n: i32, w: f64): void {
  const wv = f64x2.splat(w);
  let e = 0;
  for (; e + 2 <= n; e += 2) v128.store(at64(acc, e), f64x2.add(v128.load(at64(acc, e)), f64x2.mul(wv, v128.load(at64(row, e)))));
  for (; e < n; e++) store<f64>(at64(acc, e), load<f64>(at64(acc, e)) + w * load<f64>(at64(row, e)));
}
