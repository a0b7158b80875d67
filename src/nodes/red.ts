// The slice of Node-RED's runtime API these nodes use. @types/node-red describes Node-RED 1.3;
// these few declarations describe what Node-RED 4 gives a node, and nothing more.
import type { IncomingMessage, ServerResponse } from 'http';

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export type StatusFill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
export interface NodeStatus {
  fill?: StatusFill;
  shape?: 'ring' | 'dot';
  text?: string;
}

export type SendFn = (msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>) => void;
export type DoneFn = (err?: Error) => void;

export interface Node {
  id: string;
  type: string;
  name?: string;
  credentials: Record<string, string | undefined>;
  on(event: 'input', listener: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): void;
  send: SendFn;
  status(status: NodeStatus | Record<string, never>): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  debug(msg: unknown): void;
}

/**
 * The methods of core's `mqtt-broker` config node that its own `mqtt in` and `mqtt out` call
 * (10-mqtt.js): a node registered as a user keeps the connection open and shows its state.
 */
export interface MqttBrokerNode extends Node {
  register(user: Node): void;
  deregister(user: Node, done: () => void, autoDisconnect?: boolean): void;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export interface HttpRequest extends IncomingMessage {
  params: Record<string, string>;
  query: Record<string, string | string[] | undefined>;
  body?: unknown;
  user?: unknown;
  /** The path as the client sent it, before a mount point was taken off (Express). */
  originalUrl?: string;
}
export interface HttpResponse extends ServerResponse {
  status(code: number): HttpResponse;
  json(body: unknown): HttpResponse;
  send(body?: unknown): HttpResponse;
}
export type Handler = (req: HttpRequest, res: HttpResponse, next: (err?: unknown) => void) => void;
/** Express error middleware: four parameters, called with what a handler or parser passed to next(). */
export type ErrorHandler = (err: unknown, req: HttpRequest, res: HttpResponse, next: (err?: unknown) => void) => void;

export interface Router {
  get(path: string, ...handlers: Handler[]): void;
  head(path: string, ...handlers: Handler[]): void;
  post(path: string, ...handlers: Handler[]): void;
  put(path: string, ...handlers: Handler[]): void;
  delete(path: string, ...handlers: Handler[]): void;
  use(path: string | string[], handler: ErrorHandler): void;
  use(path: string | string[], ...handlers: Handler[]): void;
  /** The app this one is mounted in (Express sets it): Node-RED's editor API, which parses admin bodies. */
  parent?: Router;
  _router?: { stack: Array<{ route?: { path: string; methods: Record<string, boolean> }; handle?: unknown }> };
}

/** Node-RED's runtime event bus (RED.events): 'flows:started', 'node-status', ... */
export interface RuntimeEvents {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  removeListener(event: string, listener: (...args: unknown[]) => void): unknown;
}

export interface NodeAPI {
  nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType<N extends Node, D extends NodeDef>(
      type: string,
      ctor: (this: N, def: D) => void,
      opts?: { credentials?: Record<string, { type: 'text' | 'password' }>; settings?: Record<string, { value: unknown; exportable?: boolean }> },
    ): void;
    getNode(id: string): Node | null;
  };
  settings: { userDir?: string; [key: string]: unknown };
  httpNode: Router;
  httpAdmin: Router;
  auth: { needsPermission(permission: string): Handler };
  /** Absent in an older or mocked runtime. */
  events?: RuntimeEvents;
  log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void; debug(msg: string): void };
  _(key: string, substitutions?: Record<string, string | number>): string;
}

/** Removes the routes a node added to one of Node-RED's routers (as core's http in node does). */
export function removeRoutes(router: Router, path: string): void {
  const stack = router._router?.stack;
  if (!stack) return;
  for (let i = stack.length - 1; i >= 0; i--) {
    if (stack[i].route?.path === path) stack.splice(i, 1);
  }
}

/**
 * Calls `listener` with the id of each node whose status turns green. Core's mqtt-broker node
 * sets "connected" (green) on every user node at each CONNACK, so this is where a node learns
 * that a broker connection is (again) up. Returns the function that stops listening.
 */
export function onGreenStatus(RED: NodeAPI, listener: (nodeId: string) => void): () => void {
  const events = RED.events;
  if (!events || typeof events.on !== 'function') return () => undefined;
  const onStatus = (...args: unknown[]): void => {
    const event = args[0] as { id?: unknown; status?: { fill?: unknown } } | undefined;
    if (event && typeof event.id === 'string' && event.status?.fill === 'green') listener(event.id);
  };
  events.on('node-status', onStatus);
  return () => events.removeListener('node-status', onStatus);
}
