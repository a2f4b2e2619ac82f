// A named check and a catch-all, for helpers_test.js's dispatch tests.
const { comparator, run } = require('doppel-compare');

comparator('named', () => 'named check');
comparator((ex) => `catch-all for ${ex.comparator}`);

run();
