/**
 * `npm run bench`: the micro-benchmark suites. `--quick` (default) runs the
 * small sweep, `--full` adds the long sizes.
 */
import { benchFull, benchLongSequence, printFull } from './full.bench.js';
import { printTable } from './measure.js';

const full = process.argv.includes('--full');

printFull(await benchFull({ sizes: [256, 1024, 4096], jsUpTo: full ? 4096 : 1024 }));
printTable('full at a long sequence (one call, B=1 H=1)', [await benchLongSequence(32768)]);
