#!/usr/bin/env node
// Offline verification of a Sigstore bundle against a given trusted_root.json with @sigstore/verify.
// Usage: NODE_PATH=.../node_modules node sigstore_verify.js BUNDLE TRUSTED_ROOT [--san URI] [--issuer ISS] [--artifact FILE | --digest sha256:HEX]
// Offline verification with @sigstore/verify (an independent implementation). Exit 0 only when verified.
'use strict';
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i >= 0 ? process.argv[i + 1] : d; };
const [bundlePath, rootPath] = process.argv.slice(2, 4);
const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
const artifact = arg('--artifact') ? fs.readFileSync(arg('--artifact')) : undefined;
const verifier = new Verifier(toTrustMaterial(root), {
  tlogThreshold: +arg('--tlog', 1), ctlogThreshold: +arg('--ctlog', 1), timestampThreshold: +arg('--ts', 1) });
const policy = {};
if (arg('--san')) policy.subjectAlternativeName = arg('--san');
if (arg('--issuer')) policy.extensions = { issuer: arg('--issuer') };
try {
  const signer = verifier.verify(toSignedEntity(bundle, artifact), policy);
  console.log(JSON.stringify({ ok: true, san: signer.identity && signer.identity.subjectAlternativeName, issuer: signer.identity && signer.identity.extensions && signer.identity.extensions.issuer }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.code || ''} ${e.message}` }));
  process.exit(1);
}
