/**
 * Which layout a payload is decoded with (reference §9's size-dependent cases), and what the
 * decoder says of a payload shorter than its header claims (a recording that kept a GPU_UPDATE's
 * rectangle but not its pixels).
 */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeHeader, GPU_UPDATE_HEADER, HEADER_SIZE, payloadLayout, Request } from '../../src/protocol';

describe('payload layouts', () => {
  it('an unknown code: none when empty, opaque otherwise', () => {
    expect(payloadLayout('main', 999, false, 0)).toBe('none');
    expect(payloadLayout('main', 999, true, 3)).toBe('opaque');
  });

  it('a request always has its request layout', () => {
    expect(payloadLayout('main', Request.SET_MEM_TABLE, false, 0)).toBe('memTable');
  });

  it('an ack-type reply: none when empty, an ack at 8 bytes, the postcopy layout or opaque otherwise', () => {
    expect(payloadLayout('main', Request.SET_VRING_NUM, true, 0)).toBe('none');
    expect(payloadLayout('main', Request.SET_VRING_NUM, true, 8)).toBe('ack');
    expect(payloadLayout('main', Request.SET_VRING_NUM, true, 16)).toBe('opaque');
    expect(payloadLayout('main', Request.SET_MEM_TABLE, true, 8 + 32)).toBe('memTable'); // postcopy: the table with the back-end's addresses
    expect(payloadLayout('main', Request.SET_MEM_TABLE, true, 8)).toBe('ack');
  });

  it('a reply with a layout of its own: none when empty (a GET_CONFIG failure), its layout otherwise', () => {
    expect(payloadLayout('main', Request.GET_CONFIG, true, 0)).toBe('none');
    expect(payloadLayout('main', Request.GET_CONFIG, true, 20)).toBe('config');
    expect(payloadLayout('main', Request.GET_FEATURES, true, 8)).toBe('features');
  });
});

describe('decoding a payload shorter than its header says', () => {
  it('is marked truncated, and a GPU_UPDATE says how many pixel bytes were not kept', () => {
    const update = Buffer.concat([encodeHeader({ request: 8, flags: 0, size: GPU_UPDATE_HEADER + 4096 }), Buffer.alloc(GPU_UPDATE_HEADER)]);
    const d = decodeMessage('gpu', update, 'backend'); // the back-end sends GPU requests
    expect(d.layout).toBe('gpuUpdate');
    expect(d.payload).toMatchObject({ truncated: true, pixelBytes: 4096 });
    const cut = Buffer.concat([encodeHeader({ request: Request.SET_VRING_NUM, flags: 1, size: 8 }), Buffer.alloc(4)]);
    const v = decodeMessage('main', cut, 'frontend');
    expect(v.payload).toEqual({ index: 0, num: 0, truncated: true });
    expect(decodeMessage('main', cut.subarray(0, HEADER_SIZE + 4), 'frontend').known).toBe(true);
    expect(decodeMessage('main', encodeHeader({ request: 999, flags: 1, size: 0 }), 'frontend')).toMatchObject({ known: false, layout: 'none', payload: {} });
    const whole = Buffer.concat([encodeHeader({ request: Request.SET_VRING_NUM, flags: 1, size: 8 }), Buffer.alloc(8)]);
    expect(decodeMessage('main', whole, 'frontend').payload).not.toHaveProperty('truncated');
  });
});
