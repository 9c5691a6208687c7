// Backward pass of `routing` (SPEC "Gradients"), memberships fixed: the
// forward's routing calls (assembly/variants/routing.ts) give each cluster's
// member queries and keys again; each cluster is then a small dense softmax
// backward (assembly/grad/slots.ts) of its member queries over its member
// keys, whose gradients are added back into the head's rows. Query i's
// output is the mean of its n_i cluster rows, so its gradient enters each
// row as g_i / n_i. Mirrors src/grad/routing-plan.ts; the math is
// src/reference/grad/routing.ts.
//
// Per (batch, query head), after routing: routingGradJoined, then
// routingGradClusters (cluster ranges, in order: dq, dk, dv are sums).
import { scatterAddRows } from '../core/gather';
import { slotGradStart, slotSoftmaxBackward } from './slots';
import { at } from '../core/memory';

// work: Qc[wq][D] | Gc[wq][Dv] | Kc[wk][D] | Vc[wk][Dv] | dQc[wq][D] | dKc[wk][D] | dVc[wk][Dv] | visible[wq] i32 | real[wk] u8

/** Bytes of routingGradClusters' work buffer (slotGradBytes(wk, D, Dv) is its second buffer). */
export function routingGradWorkBytes(wq: i32, wk: i32, D: i32, Dv: i32): f64 {
  return (2 * <f64>wq * D + <f64>wq * Dv + 2 * <f64>wk * D + 2 * <f64>wk * Dv + <f64>wq) * 4 + <f64>((wk + 3) & ~3);
}

/**
 * The keys of one cluster that member query i (at position i + shift) sees:
 * members are in increasing order, so under causal a prefix; with padding,
 * the first real key must fall in it.
 */
// @ts-ignore: decorator
@inline function firstRealKey(kMembers: usize, wk: i32, keyPadding: usize): i32 {
  if (keyPadding == 0) return wk > 0 ? load<i32>(kMembers) : 0x7fffffff;
  for (let t = 0; t < wk; t++) {
    const j = load<i32>(at(kMembers, t));
    if (load<u8>(keyPadding + <usize>j) != 0) return j;
  }
  return 0x7fffffff;
}

/**
 * n_i into joined [Nq] (i32): the clusters query i joined and saw a key in
 * (causal: key j visible iff j <= i + shift; keyPadding u8 [Nk] or 0).
 */
export function routingGradJoined(
  Nq: i32, causal: bool, shift: i32, keyPadding: usize, qMembers: usize, wq: i32, kMembers: usize, wk: i32, C: i32, joined: usize,
): void {
  memory.fill(joined, 0, <usize>Nq << 2);
  for (let c = 0; c < C; c++) {
    const first = firstRealKey(at(kMembers, c * wk), wk, keyPadding);
    if (first == 0x7fffffff) continue;
    const members = at(qMembers, c * wq);
    for (let r = 0; r < wq; r++) {
      const i = load<i32>(at(members, r));
      if (causal && first > i + shift) continue;
      store<i32>(at(joined, i), load<i32>(at(joined, i)) + 1);
    }
  }
}

/** dst rows [count][n] = rows pos[0..count) of x [.][n]. */
function gatherRows(x: usize, pos: usize, count: i32, n: i32, dst: usize): void {
  for (let t = 0; t < count; t++) memory.copy(at(dst, t * n), at(x, load<i32>(at(pos, t)) * n), <usize>n << 2);
}

/**
 * Clusters [cStart, cEnd) of one query head: its member queries' softmax
 * backward over its member keys, the output gradient g_i / joined[i] (0 for
 * a query that joined none), added into dq [Nq][D] and the kv head's dk
 * [Nk][D], dv [Nk][Dv]. q [Nq][D], g [Nq][Dv], k [Nk][D], v [Nk][Dv];
 * visibility as routingGradJoined; ws: slotGradBytes(wk, D, Dv).
 */
export function routingGradClusters(
  q: usize, g: usize, k: usize, v: usize, Nq: i32, D: i32, Dv: i32, scale: f32, causal: bool, shift: i32, keyPadding: usize,
  qMembers: usize, wq: i32, kMembers: usize, wk: i32, joined: usize, work: usize, ws: usize,
  dq: usize, dk: usize, dv: usize, cStart: i32, cEnd: i32,
): void {
  const qc = work;
  const gc = at(qc, wq * D);
  const kc = at(gc, wq * Dv);
  const vc = at(kc, wk * D);
  const dqc = at(vc, wk * Dv);
  const dkc = at(dqc, wq * D);
  const dvc = at(dkc, wk * D);
  const visible = at(dvc, wk * Dv);
  const real = at(visible, wq);
  for (let c = cStart; c < cEnd; c++) {
    const qm = at(qMembers, c * wq);
    const km = at(kMembers, c * wk);
    gatherRows(q, qm, wq, D, qc);
    gatherRows(g, qm, wq, Dv, gc);
    for (let r = 0; r < wq; r++) {
      const n = load<i32>(at(joined, load<i32>(at(qm, r))));
      const inv: f32 = n > 0 ? 1 / <f32>n : 0;
      const row = at(gc, r * Dv);
      for (let e = 0; e < Dv; e++) store<f32>(at(row, e), load<f32>(at(row, e)) * inv);
    }
    gatherRows(k, km, wk, D, kc);
    gatherRows(v, km, wk, Dv, vc);
    if (keyPadding != 0) for (let t = 0; t < wk; t++) store<u8>(real + <usize>t, load<u8>(keyPadding + <usize>load<i32>(at(km, t))));
    if (causal) {
      // both member lists increase: the keys a query sees grow with it
      let seen = 0;
      for (let r = 0; r < wq; r++) {
        const last = load<i32>(at(qm, r)) + shift;
        while (seen < wk && load<i32>(at(km, seen)) <= last) seen++;
        store<i32>(at(visible, r), seen);
      }
    }
    slotGradStart(kc, vc, wk, D, Dv, ws, dkc, dvc);
    slotSoftmaxBackward(qc, gc, D, Dv, wk, scale, kc, ws, dqc, dkc, dvc, 0, wq, 0, keyPadding != 0 ? real : 0, causal ? visible : 0);
    scatterAddRows(dqc, qm, wq, D, dq);
    scatterAddRows(dkc, km, wk, D, dk);
    scatterAddRows(dvc, km, wk, Dv, dv);
  }
}
