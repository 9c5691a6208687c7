/**
 * The command line of `npm run bench` (bench/run.ts): its usage text, and
 * the settings the options give (sizes, rounds, budgets, sections).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { modelParts, type ModelPartName } from './model.bench.js';
import { DECODE_SIZES } from './decode.bench.js';
import { SIZES, peerImpls } from './suite.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `usage: node dist-bench/run.js [options]
  --quick              the default sweep: sizes whose predicted time per call fits the
                       budget (1.5 s; 10 s for full and the peers), 5 rounds, in under
                       2 minutes on 2 cores; then the model section, 6 rounds, about a minute
  --full               every size (N = 256 ... 16384, 65536 for linear-time variants),
                       60 s per call budget, 5 rounds, and full at N = 32768 (H = 1); the
                       model section with GQA at N = 4096 too, 9 rounds
  --variants a,b       only these variants (default: every registered one; 'none' for none)
  --sizes 256,1024     only these sizes (for every implementation)
  --peers tfjs,ort,threads,js  which peers (default all; 'none' for none); threads = our full and
                       onnxruntime-web on 2 threads; js = our plain-JS backend
  --out DIR            write latest.json and the charts to DIR
                       (default: bench/results/latest.json and docs/*.svg)
  --rounds R           interleaved rounds per size (the model section's too)
  --budget SECONDS     skip a size whose predicted time per call exceeds this
  --accuracy-n N       sequence length of the accuracy table (default 1024)
  --no-accuracy        skip the accuracy table
  --model gqa,terms    the model section's parts (default both, unless --variants other than
                       none or --sizes is given; 'none' for none): gqa = grouped-query
                       attention, H = 32, Hkv = 8, D = 128, at N = 1024 (--full: also 4096)
                       against k and v repeated and onnxruntime-web's Attention op; terms =
                       full with a block mask, a bias and softcap 30 against plain full,
                       H = 8, D = 64, N = 4096
  --model-sizes 1024   the model section at these sizes instead (every part)
  --decode 1024,4096   the decoding section's cache lengths (default 1024,4096,16384,32768
                       unless --variants other than none or --sizes is given; 'none' for
                       none): one step of a kvCache (H = 32, Hkv = 8, D = 128) against copying
                       its K and V, full without a cache and onnxruntime-web's Attention with past
  --patterns           the patterns section (about 20 s): local, Longformer and strided
                       against full per visible pair at N = 4096 (with --sizes, at those
                       sizes), H = 8, D = 64, 7 interleaved rounds in one process
  --threads            the threads section (about two minutes): every case (full causal
                       included) through attn.run on 2 threads against one thread at
                       N = 1024 (with --sizes, at those sizes), 7 interleaved rounds (or
                       --rounds), wall time; checks that both give the same bits
  --families           each family's own table (about two minutes) at N = 1024 and 4096 (with
                       --sizes, at those; --full: up to 16384, 65536 for linear): lsh and
                       routing with the share of hashing or routing and routing's centroid
                       fit, sinkhorn's sort against its attention, synthesizer's three forms,
                       linformer and compressed, linear's feature maps and linearState's
                       step, each against full (H = 8, D = 64)
  --recurrent          the recurrent section (about a minute): attn.recurrent's rules at
                       N = 1k to 64k (H = 8, D = 64) against causal linear (elu) and a plain JS
                       recurrence, the growth from N = 16384 to 65536, and recurrentState's
                       step at positions 1k and 60k
  --grad               backward against forward time (H = 8, D = 64, 5 interleaved rounds) of
                       full at N = 1024 and 4096 (causal and not), the patterns, linear,
                       compressed, sinkhorn, lsh and routing at 4096, synthesizer (given
                       logits) at 1024 (with --sizes, all at those sizes), and the memory of
                       full's backward at N = 16384 (about four minutes)`;

// ---------------------------------------------------------------- arguments

export const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    full: { type: 'boolean' },
    variants: { type: 'string' },
    sizes: { type: 'string' },
    peers: { type: 'string' },
    out: { type: 'string' },
    rounds: { type: 'string' },
    budget: { type: 'string' },
    'accuracy-n': { type: 'string' },
    'no-accuracy': { type: 'boolean' },
    model: { type: 'string' },
    'model-sizes': { type: 'string' },
    decode: { type: 'string' },
    patterns: { type: 'boolean' },
    threads: { type: 'boolean' },
    families: { type: 'boolean' },
    recurrent: { type: 'boolean' },
    grad: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
/** The items of a comma-separated option. */
export const list = (s: string | undefined) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : []);
const positiveInt = (s: string, name: string) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name}: expected a positive integer, received ${JSON.stringify(s)}`);
  return n;
};

export const fullSweep = !!args.full;
export const mode = fullSweep ? 'full' : 'quick';
export const explicitSizes = args.sizes !== undefined;
export const baseSizes = explicitSizes ? list(args.sizes).map((s) => positiveInt(s, 'sizes')) : SIZES;
export const peerNames = args.peers === undefined ? Object.keys(peerImpls) : list(args.peers).filter((p) => p !== 'none');
for (const p of peerNames) if (!peerImpls[p]) throw new RangeError(`--peers: expected some of ${Object.keys(peerImpls).join(', ')} or none, received '${p}'`);
export const rounds = args.rounds ? positiveInt(args.rounds, 'rounds') : 5;
/** Predicted ms per call above which a size is skipped. */
export const budgetMs = (args.budget ? Number(args.budget) : fullSweep ? 60 : 1.5) * 1000;
if (!(budgetMs > 0)) throw new RangeError(`--budget: expected a positive number of seconds, received ${JSON.stringify(args.budget)}`);
/**
 * The quick sweep still measures full and the peers up to N = 4096 (the
 * comparison the suite is for): they get a larger budget.
 */
export const essentialBudgetMs = args.budget ? budgetMs : Math.max(budgetMs, 10_000);
/** Target ms of one round of one configuration (calls are repeated up to it). */
export const roundMs = fullSweep ? 400 : 150;
/** Quick sweep: seconds for the timings, beyond which the costliest non-essential rows are dropped. */
export const timingBudgetS = fullSweep ? Infinity : 80;
/** Quick sweep: seconds for the accuracy table (its slowest cases are dropped to fit). */
export const accuracyBudgetS = 30;
export const accuracyN = args['no-accuracy'] ? 0 : args['accuracy-n'] ? positiveInt(args['accuracy-n'], 'accuracy-n') : 1024;
export const noVariants = list(args.variants).join() === 'none';
const modelNames = Object.keys(modelParts) as ModelPartName[];
export const modelSelected =
  args.model !== undefined ? list(args.model).filter((p) => p !== 'none') : (args.variants === undefined || noVariants) && !explicitSizes ? modelNames : [];
for (const p of modelSelected) if (!modelNames.includes(p as ModelPartName)) throw new RangeError(`--model: expected some of ${modelNames.join(', ')} or none, received '${p}'`);
export const modelSizes = args['model-sizes'] ? list(args['model-sizes']).map((s) => positiveInt(s, 'model-sizes')) : undefined;
/** The model section's rounds: more than the sweep's, its ratios (paired by round) are the figures. */
export const modelRounds = args.rounds ? rounds : fullSweep ? 9 : 6;
export const decodeSizes =
  args.decode !== undefined
    ? list(args.decode).filter((s) => s !== 'none').map((s) => positiveInt(s, 'decode'))
    : (args.variants === undefined || noVariants) && !explicitSizes
      ? DECODE_SIZES
      : [];
const outDir = args.out ? resolve(args.out) : null;
export const jsonPath = outDir ? join(outDir, 'latest.json') : join(root, 'bench/results/latest.json');
export const chartDir = outDir ?? join(root, 'docs');

