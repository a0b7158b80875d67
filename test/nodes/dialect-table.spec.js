'use strict';
// The editor's one dialect table (resources/ota-dialects.js) against the runtime: every dialect the
// runtime knows is offered in the dialogs, chunk-server is offered exactly the dialects that fetch
// chunks, and every field a dialect claims is a field of some dialog. A dialect added on one side
// only (Tasmota was, at a merge) fails here, not in a user's editor.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { DIALECTS } = require('../../dist/core/types');
const { dialectFor } = require('../../dist/core/dialects');

const ROOT = path.join(__dirname, '..', '..');

function editorTable() {
  const RED = {};
  vm.runInNewContext(fs.readFileSync(path.join(ROOT, 'resources', 'ota-dialects.js'), 'utf8'), { RED, $: () => undefined });
  return RED.otaDialects;
}

describe('the editor dialect table', () => {
  const table = editorTable();

  it('offers every dialect the runtime knows, and no other', () => {
    assert.deepStrictEqual(Array.from(table.list, (d) => d.id).sort(), [...DIALECTS].sort());
  });

  it('marks as chunked exactly the dialects chunk-server can serve', () => {
    for (const d of table.list) {
      assert.strictEqual(d.chunks, typeof dialectFor(d.id).chunkReply === 'function', d.id);
    }
  });

  it('names only fields that some node dialog has', () => {
    const html = fs.readdirSync(path.join(ROOT, 'nodes')).filter((f) => f.endsWith('.html'))
      .map((f) => fs.readFileSync(path.join(ROOT, 'nodes', f), 'utf8')).join('\n');
    for (const field of table.fields()) assert.ok(html.includes(`id="node-input-${field}"`), `no dialog has node-input-${field}`);
  });
});
