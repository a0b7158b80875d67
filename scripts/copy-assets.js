'use strict';
// Node-RED loads a node's editor file (<name>.html), its locales/ and icons/ from beside the
// node's .js. TypeScript compiles src/nodes/*.ts to dist/nodes/*.js, so the build copies the
// hand-written editor side (nodes/) and the icon sources (icons/) there.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const target = path.join(root, 'dist', 'nodes');

fs.mkdirSync(target, { recursive: true });
fs.cpSync(path.join(root, 'nodes'), target, { recursive: true });
fs.cpSync(path.join(root, 'icons'), path.join(target, 'icons'), { recursive: true });
