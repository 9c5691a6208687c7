/**
 * Central finite differences of a float64 objective of float32 data, for the
 * gradient tests. `D(h) = (L(x + h) - L(x - h)) / (2h)` (with the float32
 * steps actually taken), extrapolated as Richardson does, `(4 D(h) - D(2h)) /
 * 3`, which leaves an O(h^4) error. Where the objective is not smooth over
 * `[x - 2h, x + 2h]` (a relu, an lsh bucket, a routing membership switching
 * there) no difference is trustworthy, and the estimate is null: a kink shows
 * as D(h) and D(2h) disagreeing, or, when it sits at x itself (both then
 * average the two slopes), as second differences over h and 2h disagreeing
 * (a smooth objective has the same second derivative over both).
 */

/** The estimate, or null where the objective is not smooth; `bound(estimate)` is the error the caller will allow, `noise` the objective's rounding. */
export function richardson(objective: () => number, data: Float32Array, index: number, h: number, bound: (estimate: number) => number, noise: number): number | null {
  const x = data[index];
  const at = (step: number): [number, number] => {
    data[index] = x + step;
    const taken = data[index] - x;
    const value = objective();
    data[index] = x;
    return [taken, value];
  };
  const center = objective();
  const [[up1, L1], [down1, M1], [up2, L2], [down2, M2]] = [at(h), at(-h), at(2 * h), at(-2 * h)];
  const d1 = (L1 - M1) / (up1 - down1);
  const d2 = (L2 - M2) / (up2 - down2);
  // second derivatives from the same points: exact for a quadratic, even with unequal steps
  const second = (up: number, L: number, down: number, M: number) => (2 * ((L - center) / up - (center - M) / -down)) / (up - down);
  const estimate = (4 * d1 - d2) / 3;
  const allowed = bound(estimate);
  const smooth = Math.abs(d1 - d2) <= allowed / 2 && Math.abs(second(up1, L1, down1, M1) - second(up2, L2, down2, M2)) <= allowed / (4 * h) + (8 * noise) / (h * h);
  return smooth ? estimate : null;
}
