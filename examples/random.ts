/** Seeded random numbers for the examples (xorshift32 and Box-Muller), so that a run replays. */

/** Uniform numbers in [0, 1). */
export function uniformGenerator(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** A standard normal from two uniforms. */
export function normal(uniform: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
