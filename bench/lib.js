/**
 * What every bench shares: variants run in an order that rotates each round (so none always runs
 * first, on a cold cache, or last, on a hot machine), medians with their spread, and targets that
 * decide the exit status: a bench that states a target exits 1 when it is missed, and when a
 * count is lost.
 */
'use strict';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** "min-max" of a list, at `digits` decimals */
const spread = (xs, digits = 2) => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;

/** The variants in round `round`'s order: rotated by one each round, reversed every other. */
function roundOrder(variants, round) {
  const k = variants.length;
  const rotated = variants.map((_, i) => variants[(i + round) % k]);
  return Math.floor(round / k) % 2 ? rotated.reverse() : rotated;
}

class Targets {
  constructor() {
    this.list = [];
    this.lost = [];
  }

  /** Records a target (op '<=' or '>='); returns whether it was met. */
  check(name, value, op, limit) {
    const met = op === '<=' ? value <= limit : value >= limit;
    this.list.push({ name, value, op, limit, met });
    return met;
  }

  /** Something that must never happen did (counts lost, packets missing): always a failure. */
  loss(what) {
    this.lost.push(what);
  }

  /** Prints every target and loss, and sets the exit status: 1 if anything was missed. */
  finish() {
    if (this.list.length) console.log('# targets');
    for (const t of this.list) console.log(`${t.met ? 'met    ' : 'NOT MET'} ${t.name}: ${t.value.toFixed(3)} (target ${t.op} ${t.limit})`);
    for (const l of this.lost) console.log(`LOST    ${l}`);
    const missed = this.list.filter((t) => !t.met).length;
    if (missed || this.lost.length) {
      console.log(`bench failed: ${missed} target(s) not met, ${this.lost.length} loss(es)`);
      process.exitCode = 1;
    }
  }
}

module.exports = { median, spread, roundOrder, Targets };
