export * from './entity';
export { HomeAssistantBridge, DEFAULT_LIMITS } from './bridge';
export type { BridgeLimits, BridgePorts } from './bridge';
export { startInstall } from './install';
