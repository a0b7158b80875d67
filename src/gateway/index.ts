// The device front door, usable without Node-RED (bin/ota-gateway.js, tests, other hosts).
export { OtaGateway } from './gateway';
export type { GatewayOptions, GatewayCounters, ConnectEvent, DisconnectEvent, SubscribeEvent, RefusedEvent, GatewayAclRules } from './gateway';
export { RegistryDirectory, IDENTITY_MODES, isIdentityMode } from './directory';
export type { DeviceDirectory, DeviceCredentials, DeviceIdentity, AuthResult, AuthFailure, IdentityMode, RegistryDirectoryOptions } from './directory';
export { DEFAULT_ACL_RULES, NAMESPACED_DIALECTS, NamespacePolicy, AclPolicy, IncompleteIdentityError, policyFor } from './policy';
export type { AclRule, TopicPolicy } from './policy';
export { parseBrokerUrl, redactUrl } from './upstream';
export { matches, intersects, contains, meet } from './topics';
export { BrokerProtocol, UPSTREAM_PROTOCOLS, isUpstreamProtocol } from './protocol-bridge';
export type { UpstreamProtocol, ProtocolNotice, BridgeCounters } from './protocol-bridge';
export { DEFAULT_LIMITS, resolveLimits } from './limits';
export type { GatewayLimits } from './limits';
export { LogLimiter, printable, droppedNote } from './log-limit';
export { upstreamClientId } from './identity';
