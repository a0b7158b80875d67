'use strict';
// Node-RED loads a node's editor file (<name>.html), its locales/ and icons/ from beside the
// node's .js, and a plugin's the same way. TypeScript compiles src/nodes/*.ts to dist/nodes/*.js
// and src/plugins/*.ts to dist/plugins/*.js, so the build copies the hand-written editor side
// (nodes/, plugins/) and the icon sources (icons/) there.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const target = path.join(root, 'dist', 'nodes');

fs.mkdirSync(target, { recursive: true });
fs.cpSync(path.join(root, 'nodes'), target, { recursive: true });
fs.cpSync(path.join(root, 'icons'), path.join(target, 'icons'), { recursive: true });
fs.cpSync(path.join(root, 'plugins'), path.join(root, 'dist', 'plugins'), { recursive: true });
