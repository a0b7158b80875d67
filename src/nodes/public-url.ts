import * as os from 'os';

// Where devices reach Node-RED's download route when the repository's Public URL is left empty
// (as in the examples): a device on the network cannot use "localhost", so the default is this
// machine's address on the network, Node-RED's port and its httpNodeRoot. A proxy or a name in
// front of Node-RED still needs the Public URL set.

/** The parts of Node-RED's settings it reads: uiHost, uiPort, https, httpNodeRoot. */
export type HttpSettings = Record<string, unknown>;

type Interfaces = ReturnType<typeof os.networkInterfaces>;

/** The first IPv4 address of this machine that is not loopback, or 127.0.0.1. */
function networkAddress(interfaces: Interfaces): string {
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export function defaultPublicUrl(settings: HttpSettings, interfaces: Interfaces = os.networkInterfaces()): string {
  const bound = typeof settings.uiHost === 'string' && settings.uiHost && settings.uiHost !== '0.0.0.0' && settings.uiHost !== '::' ? settings.uiHost : '';
  const host = bound || networkAddress(interfaces);
  const port = Number(settings.uiPort) > 0 ? Number(settings.uiPort) : 1880;
  const root = typeof settings.httpNodeRoot === 'string' ? settings.httpNodeRoot.replace(/\/+$/, '') : '';
  return `${settings.https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${root}`;
}
