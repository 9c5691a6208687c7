/**
 * The families section (`--families`): each family's own table, the figures
 * its README section gives. lsh and routing with the share of hashing or
 * routing and the fit of routing's centroids (clustering.bench.ts);
 * sinkhorn's sort against its attention (sinkhorn.bench.ts); synthesizer's
 * three forms (synthesizer.bench.ts); linformer and compressed
 * (fewer-keys.bench.ts); linear's feature maps against `full` and
 * linearState's step (linear.bench.ts). Each against `full` at the same N,
 * B = 1, H = 8, D = 64, one thread, in this process; `full: true` adds the
 * larger sizes.
 */
import { benchClustering, printClustering, type ClusteringRow } from './clustering.bench.js';
import { benchFewerKeys, printFewerKeys, type FewerKeysRow } from './fewer-keys.bench.js';
import { benchLinear, benchLinearStep, printLinear, type LinearRow, type StepRow } from './linear.bench.js';
import { benchSinkhorn, printSinkhorn, type SinkhornRow } from './sinkhorn.bench.js';
import { benchSynthesizer, printSynthesizer, type SynthesizerRow } from './synthesizer.bench.js';

export interface FamiliesSection {
  clustering: ClusteringRow[];
  sinkhorn: SinkhornRow[];
  synthesizer: SynthesizerRow[];
  fewerKeys: FewerKeysRow[];
  linear: LinearRow[];
  linearStep: StepRow[];
}

/** sizes: instead of each table's own (1024 and 4096; `full`: up to 16384, 65536 for linear). */
export async function benchFamilies({ full = false, sizes, progress }: { full?: boolean; sizes?: number[]; progress: (message: string) => void }): Promise<FamiliesSection> {
  progress('families: lsh and routing');
  const clustering = await benchClustering({ full, sizes });
  progress('families: sinkhorn');
  const sinkhorn = await benchSinkhorn({ full, sizes });
  progress('families: synthesizer');
  const synthesizer = await benchSynthesizer(sizes ? { sizes } : {});
  progress('families: linformer and compressed');
  const fewerKeys = await benchFewerKeys({ full, sizes });
  progress('families: linear');
  const linear = await benchLinear({ full, sizes });
  progress("families: linearState's step");
  const linearStep = await benchLinearStep();
  return { clustering, sinkhorn, synthesizer, fewerKeys, linear, linearStep };
}

export function printFamilies(f: FamiliesSection): void {
  printClustering(f.clustering);
  printSinkhorn(f.sinkhorn);
  printSynthesizer(f.synthesizer);
  printFewerKeys(f.fewerKeys);
  printLinear(f.linear, f.linearStep);
}
