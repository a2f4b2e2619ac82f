// One trivial check: the throughput benchmark's, and the single check that serves every name.
const { comparator, run } = require('doppel-compare');

comparator('trivial', () => true);

run();
