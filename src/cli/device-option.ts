/** The --device option: which virtio device to name feature bits by. */
import { DEVICE_TYPES } from '../protocol';

export const DEVICE_HELP = `name device feature bits as this device's: ${DEVICE_TYPES.join(', ')} (default: inferred per session from the peers' command lines, GPU_SET_SOCKET, the config size)`;
