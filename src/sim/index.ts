// The device simulator: N devices of any dialect against a real broker, for tests, benchmarks,
// demos and anyone without hardware. Knows nothing of Node-RED.
export { startFleet, Fleet, DRIVERS, fillPattern, type GroupSummary } from './fleet';
export { SimDevice } from './device';
export { verifyChecksum, deviceChecksum, sdkReversedHex } from './tb-checksum';
export { decodePatch, encodePatch, shouldFlash } from './sming-decoder';
export { connectClient, hasNoDelay } from './connect';
export { httpDownload } from './http-get';
export { renderBars, ProgressDisplay } from './display';
export type * from './types';
