#!/usr/bin/env node
// tuf-js (an independent TUF implementation) fetches targets through a mirror.
// Usage: NODE_PATH=... node tuf_fetch.js BASE_URL INITIAL_ROOT CACHE_DIR TARGET [TARGET ...]
// Prints one JSON line per target; exits non-zero on any TUF failure.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Updater } = require('tuf-js');

async function main() {
  const [base, root, cache, ...targets] = process.argv.slice(2);
  const metadataDir = path.join(cache, 'metadata');
  const targetDir = path.join(cache, 'targets');
  fs.mkdirSync(metadataDir, { recursive: true });
  fs.mkdirSync(targetDir, { recursive: true });
  if (!fs.existsSync(path.join(metadataDir, 'root.json'))) {
    fs.copyFileSync(root, path.join(metadataDir, 'root.json'));
  }
  const b = base.replace(/\/+$/, '');
  const u = new Updater({ metadataBaseUrl: b, targetBaseUrl: b + '/targets', metadataDir, targetDir });
  await u.refresh();
  for (const t of targets) {
    const info = await u.getTargetInfo(t);
    if (!info) throw new Error(`target ${t} not found`);
    const p = (await u.findCachedTarget(info)) || (await u.downloadTarget(info));
    const data = fs.readFileSync(p);
    const rootMd = JSON.parse(fs.readFileSync(path.join(metadataDir, 'root.json')));
    const tsMd = JSON.parse(fs.readFileSync(path.join(metadataDir, 'timestamp.json')));
    console.log(JSON.stringify({ target: t, sha256: crypto.createHash('sha256').update(data).digest('hex'),
      length: data.length, root_version: rootMd.signed.version, timestamp_version: tsMd.signed.version }));
  }
}
main().catch((e) => { console.error(`tuf-js: ${e && e.stack || e}`); process.exit(1); });
