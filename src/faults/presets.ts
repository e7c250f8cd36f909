/**
 * Named sets of rules for a known peer. virtio-vhost-user: QEMU's experimental device (out of
 * tree, uarif1/qemu hw/virtio/virtio-vhost-user.c) passes only 15 request types and
 * disconnects on any other (field notes C.1); its protocol-feature mask is meant to be
 * MQ|REPLY_ACK. With the preset a modern frontend stays connected: the proxy offers only those
 * protocol features, and answers or drops the requests the device would refuse.
 */
import type { FaultRule } from './rules';

export interface Preset {
  doc: string;
  rules: FaultRule[];
}

export const VVU_ALLOWED = [
  'GET_FEATURES',
  'SET_FEATURES',
  'SET_OWNER',
  'RESET_OWNER',
  'SET_MEM_TABLE',
  'SET_VRING_NUM',
  'SET_VRING_ADDR',
  'SET_VRING_BASE',
  'SET_VRING_KICK',
  'SET_VRING_CALL',
  'GET_VRING_BASE',
  'GET_PROTOCOL_FEATURES',
  'SET_PROTOCOL_FEATURES',
  'GET_QUEUE_NUM',
  'SET_VRING_ENABLE',
];

export const PRESETS: Record<string, Preset> = {
  'virtio-vhost-user': {
    doc: "QEMU's virtio-vhost-user device as the back-end: 15 request types, protocol features MQ|REPLY_ACK",
    rules: [
      { action: 'mask', features: 'protocol', keep: ['MQ', 'REPLY_ACK'], in: 'both', comment: 'virtio-vhost-user supports MQ|REPLY_ACK only' },
      { action: 'filter', allow: VVU_ALLOWED, comment: 'virtio-vhost-user disconnects on any other request' },
    ],
  },
};
