// Drives @actions/cache — the library behind actions/cache — against the
// server the runner environment names (ACTIONS_CACHE_URL for v1; with
// ACTIONS_CACHE_SERVICE_V2=true, ACTIONS_RESULTS_URL for v2) with
// ACTIONS_RUNTIME_TOKEN. Run by tests/gha_client.rs.
//
//   node gha-cache.mjs save <key> <path>
//   node gha-cache.mjs restore <path> <primary key> [restore key ...]
//
// Prints one JSON line last: {"cacheId":n} or {"matchedKey":"..."|null}.
// The library only warns when a save fails, so a failed save exits 1 here.
import * as cache from '@actions/cache';

const [command, ...args] = process.argv.slice(2);

async function main() {
  if (command === 'save' && args.length === 2) {
    const [key, path] = args;
    const cacheId = await cache.saveCache([path], key);
    console.log(JSON.stringify({ cacheId }));
    return cacheId === -1 ? 1 : 0;
  }
  if (command === 'restore' && args.length >= 2) {
    const [path, primaryKey, ...restoreKeys] = args;
    const matchedKey = await cache.restoreCache([path], primaryKey, restoreKeys);
    console.log(JSON.stringify({ matchedKey: matchedKey ?? null }));
    return 0;
  }
  console.error('usage: gha-cache.mjs save <key> <path> | restore <path> <key> [restore key ...]');
  return 2;
}

main().then(
  code => process.exit(code),
  error => {
    console.error(error);
    process.exit(1);
  }
);
