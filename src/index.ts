// What `require('node-red-contrib-mqtt-ota')` gives a program that is not Node-RED: the OTA
// repository (catalogue, devices, rollout state in one storage directory), the device front door
// and the device simulator. Node-RED itself loads the nodes listed in package.json, not this file.
export { OtaRepository, DEFAULT_DOWNLOAD_PATH } from './core/repository';
export type { RepositoryOptions } from './core/repository';
export { DIALECTS, PROGRESS_STATES, OtaError, isDialectName } from './core/types';
export type { DialectName, DeviceRecord, FirmwareRecord, ProgressEvent, ProgressState, PresenceEvent, MqttOut } from './core/types';
export * as gateway from './gateway';
export * as sim from './sim';
