#!/usr/bin/env node
// @sigstore/verify (in-process) over a list of bundles.
// Usage: NODE_PATH=... node sigstore_js_bench.js MANIFEST.json SECONDS
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const [manPath, secs] = process.argv.slice(2);
const man = JSON.parse(fs.readFileSync(manPath, 'utf8'));
const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(man.trusted_root, 'utf8')));
const verifier = new Verifier(toTrustMaterial(root), { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
const items = man.items.map((it) => ({
  json: JSON.parse(fs.readFileSync(it.bundle, 'utf8')),
  artifact: it.artifact ? fs.readFileSync(it.artifact) : undefined,
  policy: { subjectAlternativeName: it.identity || man.identity, extensions: { issuer: it.issuer || man.issuer } },
}));
for (const it of items) verifier.verify(toSignedEntity(bundleFromJSON(it.json), it.artifact), it.policy);
let n = 0;
const start = process.hrtime.bigint();
const limit = BigInt(Math.round(parseFloat(secs) * 1e9));
while (process.hrtime.bigint() - start < limit) {
  for (const it of items) {
    verifier.verify(toSignedEntity(bundleFromJSON(it.json), it.artifact), it.policy);
    n += 1;
  }
}
const el = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ impl: '@sigstore/verify', bundles_per_s: n / el, verified: n, seconds: el }));
