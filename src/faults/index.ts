/** Fault rules: data, schema, parsing and matching. No I/O beyond reading a rules file. */
export * from './rules';
export * from './schema';
export * from './compile';
export * from './parse';
export * from './presets';
export * from './file';
export * from './match';
export * from './rule-set';
export * from './chaos';
