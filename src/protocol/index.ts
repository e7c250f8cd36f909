/** Pure vhost-user protocol knowledge: codes, layouts, features, rules. No I/O. */
export * from './header';
export * from './features';
export * from './payloads';
export * from './requests';
export * from './negotiation';
export * from './reply';
export * from './decode';
export * from './validate';
export * from './format';
export * from './channels';
export * from './dialects';
export * from './gpu-payloads';
export * from './device-inference';
export * from './ring-states';
