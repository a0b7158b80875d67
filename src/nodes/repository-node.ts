import type { OtaRepository } from '../core/repository';
import type { Node, NodeAPI, NodeDef } from './red';
import type { HomeAssistantDef } from './home-assistant';

// What every flow node needs from the ota-repository config node.

export interface OtaRepositoryDef extends NodeDef, HomeAssistantDef {
  storageDir?: string;
  maxImageMB?: string | number;
  urlTtlDays?: string | number;
  publicUrl?: string;
  downloadPath?: string;
  /** TCP_NODELAY on every mqtt-broker connection of the runtime (default on; see tcp-nodelay.ts). */
  tcpNoDelay?: boolean | string;
  /** Where the repository keeps its model: 'files' (default) or 'postgres' (credential postgresUrl). */
  backend?: 'files' | 'postgres';
}

export interface OtaRepositoryNode extends Node {
  repo: OtaRepository;
  users: Map<string, Node>;
  register(node: Node): void;
  deregister(node: Node): void;
}

/**
 * The repository a flow node is configured with, registered as its user; or null (with a red
 * status and an error saying what to do) when none is selected.
 */
export function useRepository(RED: NodeAPI, node: Node, repositoryId: unknown): OtaRepositoryNode | null {
  const repoNode = typeof repositoryId === 'string' && repositoryId ? (RED.nodes.getNode(repositoryId) as OtaRepositoryNode | null) : null;
  if (!repoNode || !repoNode.repo) {
    // Each node's message catalogue carries these two keys under its own type.
    node.status({ fill: 'red', shape: 'ring', text: `${node.type}.status.noRepository` });
    node.error(RED._(`${node.type}.errors.noRepository`));
    return null;
  }
  repoNode.register(node);
  node.on('close', (_removed, done) => {
    repoNode.deregister(node);
    done();
  });
  return repoNode;
}
