import * as path from 'path';
import type { NodeAPI, Node } from '../nodes/red';
import type { OtaRepositoryNode } from '../nodes/repository-node';
import { LiveFeed } from '../sidebar/live-feed';

// The runtime half of the editor's OTA sidebar (the editor half is ota-sidebar.html beside this
// file), a Node-RED plugin as node-red-debugger is one. The sidebar reads and acts through the
// admin API under /ota (src/nodes/admin-api.ts: firmware, devices, assignments, rollouts); this
// adds the one thing that API has no route for, the list of deployed repositories, and the live
// feed: per repository a LiveFeed publishing on RED.comms under `ota-sidebar/<repository id>/`.
// Comms only reach editors that passed adminAuth, as the routes do.

const TOPIC = 'ota-sidebar';

/** What RED.comms, RED.events and the node list give a plugin (Node-RED 4 and 5). */
interface PluginAPI extends NodeAPI {
  plugins: { registerPlugin(id: string, definition: { type?: string; onadd?: () => void }): void };
  comms: { publish(topic: string, data: unknown, retain?: boolean): void };
  nodes: NodeAPI['nodes'] & { eachNode(cb: (n: { id: string; type: string }) => void): void };
}

interface RepositoryEntry {
  id: string;
  label: string;
}

interface Watched {
  node: OtaRepositoryNode;
  feed: LiveFeed;
}

export = function (RED: PluginAPI) {
  const watched = new Map<string, Watched>();

  function deployed(): OtaRepositoryNode[] {
    const out: OtaRepositoryNode[] = [];
    RED.nodes.eachNode((n) => {
      if (n.type !== 'ota-repository') return;
      const node = RED.nodes.getNode(n.id) as (Node & Partial<OtaRepositoryNode>) | null;
      if (node?.repo) out.push(node as OtaRepositoryNode);
    });
    return out;
  }

  function entries(): RepositoryEntry[] {
    return [...watched.values()].map(({ node }) => ({ id: node.id, label: node.name || path.basename(node.repo.dir) }));
  }

  /** After each deploy: a feed per repository node now running, none for one gone or replaced. */
  function rescan(): void {
    const now = new Map(deployed().map((n) => [n.id, n]));
    for (const [id, w] of watched) {
      if (now.get(id) === w.node) continue;
      w.feed.close();
      watched.delete(id);
    }
    for (const [id, node] of now) {
      if (watched.has(id)) continue;
      const feed = new LiveFeed(node.repo, `${TOPIC}/${id}`, (topic, data, retain) => RED.comms.publish(topic, data, retain));
      watched.set(id, { node, feed });
    }
    RED.comms.publish(`${TOPIC}/repositories`, entries(), true);
  }

  RED.plugins.registerPlugin('ota-sidebar', {
    onadd() {
      const read = RED.auth.needsPermission('ota.read');
      RED.httpAdmin.get('/ota/sidebar/repositories', read, (_req, res) => {
        res.json(entries());
      });
      RED.events?.on('flows:started', rescan);
    },
  });
};
