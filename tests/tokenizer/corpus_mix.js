// Deterministic mix of the test corpus cases up to `targetBytes` UTF-8 bytes
// (xorshift32 with a fixed seed), shared by oracle.js and the benchmark.
'use strict';

function corpusMix(cases, targetBytes) {
  let s = 0x9e3779b9 >>> 0;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
  const seps = ['', ' ', '\n', '\n\n', '\t', '  '];
  const parts = [];
  let bytes = 0;
  while (bytes < targetBytes) {
    const t = cases[next() % cases.length].text;
    const sep = seps[next() % seps.length];
    parts.push(t, sep);
    bytes += Buffer.byteLength(t) + sep.length;
  }
  return parts.join('');
}

module.exports = { corpusMix };
