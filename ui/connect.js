// How to connect: each client's snippet for this server and a namespace.
'use strict';

function snippets(base, ns) {
  const host = base.replace(/^https?:\/\//, '');
  return [
    ['BuildKit registry cache', `docker buildx build \\\n  --cache-to   type=registry,ref=${host}/${ns}/app:cache,mode=max \\\n  --cache-from type=registry,ref=${host}/${ns}/app:cache \\\n  -t app .`],
    ['BuildKit gha cache', `docker buildx build \\\n  --cache-to   "type=gha,url=${base}/,token=$LARDER_CACHE_TOKEN,scope=app,mode=max" \\\n  --cache-from "type=gha,url=${base}/,token=$LARDER_CACHE_TOKEN,scope=app" \\\n  -t app .\n# the namespace (${ns}) is the token's; scope separates caches within it`],
    ['actions/cache (self-hosted runner env)', `ACTIONS_CACHE_URL=${base}/\nACTIONS_RUNTIME_TOKEN=$LARDER_CACHE_TOKEN   # a token for namespace ${ns}`],
    ['Bazel (.bazelrc)', `build --remote_cache=${base}/cache/${ns}\n# and: bazel build //... --remote_header="Authorization=Bearer $LARDER_CACHE_TOKEN"`],
    ['ccache', `export CCACHE_REMOTE_STORAGE="${base}/cache/${ns}|layout=subdirs|bearer-token=$LARDER_CACHE_TOKEN"`],
    ['sccache', `export SCCACHE_WEBDAV_ENDPOINT=${base}/cache/${ns}/\nexport SCCACHE_WEBDAV_TOKEN="$LARDER_CACHE_TOKEN"\nexport RUSTC_WRAPPER=sccache`],
    ['Gradle (settings.gradle)', `buildCache {\n    remote(HttpBuildCache) {\n        url = '${base}/cache/${ns}/'\n        allowInsecureProtocol = ${base.startsWith('http:')}\n        push = System.getenv('CI') != null\n        credentials {\n            username = 'gradle'\n            password = System.getenv('LARDER_CACHE_TOKEN')\n        }\n    }\n}`],
    ['Turborepo', `export TURBO_API=${base}\nexport TURBO_TOKEN="$LARDER_CACHE_TOKEN"\nexport TURBO_TEAM=${ns}`],
    ['npm, pnpm, yarn (.npmrc)', `# the server needs [proxy.npm] enabled = true\nregistry=${base}/npm/${ns}/\nreplace-registry-host=always\n//${host}/npm/${ns}/:_authToken=\${LARDER_CACHE_TOKEN}`],
    ['pip and uv', `# the server needs [proxy.pypi] enabled = true\nexport PIP_INDEX_URL=${base.replace('://', '://larder:$LARDER_CACHE_TOKEN@')}/pypi/${ns}/simple/\nexport UV_INDEX_URL="$PIP_INDEX_URL"`],
    ['Go modules', `# the server needs [proxy.go] enabled = true\nexport GOPROXY=${base}/go/${ns}/\n# with a token (Go sends it only over https): in ~/.netrc\n# machine ${host} login larder password $LARDER_CACHE_TOKEN`],
    ['Nx (20.8+)', `export NX_SELF_HOSTED_REMOTE_CACHE_SERVER=${base}\nexport NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN="$LARDER_CACHE_TOKEN"   # a token for namespace ${ns}`],
  ];
}

PAGES.connect = async (root) => {
  const ns = el('input', { id: 'c-namespace', value: sessionStorage.getItem('larder-ns') || 'team' });
  const list = el('div', { id: 'snippets' });
  const draw = () => {
    const name = ns.value.trim() || 'team';
    sessionStorage.setItem('larder-ns', name);
    list.replaceChildren(...snippets(location.origin, name).map(([title, text]) => {
      const copy = el('button', { type: 'button' }, 'Copy');
      copy.addEventListener('click', async () => {
        try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch (_) { copy.textContent = 'Select the text to copy'; }
      });
      return el('section', {}, el('h2', {}, title, ' ', copy), el('pre', {}, text));
    }));
  };
  ns.addEventListener('input', draw);
  draw();
  root.append(el('h1', {}, 'How to connect'),
    el('p', {}, 'Each snippet uses this server\'s URL and the namespace below; $LARDER_CACHE_TOKEN is a token for that namespace (see Tokens).'),
    el('label', { for: 'c-namespace' }, 'Namespace'), ns, list);
};
