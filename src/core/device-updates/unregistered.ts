// Uplinks from devices the repository does not know (any client on the broker can publish on a
// device topic; a second Node-RED on the same broker has devices of its own) create no rollout
// record: they are counted, and a node reports the count now and then. Memory is bounded: a
// number and a few example ids, however many distinct ids a flood uses.

const MAX_EXAMPLES = 3;
const MAX_ID_SHOWN = 32;

/** An id fit for a log line: cut short, anything but printable ASCII escaped. */
function shown(id: string): string {
  const cut = id.length > MAX_ID_SHOWN ? `${id.slice(0, MAX_ID_SHOWN)}…` : id;
  return `"${cut.replace(/[^\x20-\x7e…]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`;
}

export class UnregisteredTally {
  private count = 0;
  private examples: string[] = [];

  add(device: string): void {
    this.count += 1;
    if (this.examples.length >= MAX_EXAMPLES) return;
    const text = shown(device);
    if (!this.examples.includes(text)) this.examples.push(text);
  }

  /** What came since the last call, as one line, or undefined when nothing did; counting starts afresh. */
  take(): string | undefined {
    if (this.count === 0) return undefined;
    const n = this.count;
    const text = `ignored ${n} uplink${n === 1 ? '' : 's'} from devices not registered in this repository (e.g. ${this.examples.join(', ')}): they get no rollout record; register a device (POST /ota/devices) to track it`;
    this.count = 0;
    this.examples = [];
    return text;
  }
}
