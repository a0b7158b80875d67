'use strict';
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');

const NODE_AND_MOCHA = Object.fromEntries(
  ['require', 'module', '__dirname', 'process', 'console', 'Buffer', 'URL', 'fetch', 'AbortController',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate',
    'describe', 'it', 'before', 'after', 'beforeEach', 'afterEach'].map((name) => [name, 'readonly']),
);

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.demo/**', 'nodes/**/*.html'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: NODE_AND_MOCHA },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Editor-side code (the dialect table) and the functions browser specs run in the page.
    files: ['resources/**/*.js', 'test/e2e/sidebar.spec.js', 'test/support/browser.js'],
    languageOptions: { globals: { RED: 'readonly', $: 'readonly', window: 'readonly', localStorage: 'readonly', DataTransfer: 'readonly', File: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // `const node = this` is how Node-RED nodes keep their node in callbacks (core does it too).
      '@typescript-eslint/no-this-alias': 'off',
    },
  },
);
