// A real third-party Stratum v1 pool (the npm package `stratum-pool-sha256`) on loopback, for the
// broker's upstream tests, with the smallest stand-in for the bitcoind JSON-RPC it polls: block
// templates (with two transactions, so the merkle branch is not empty), chain facts, submitblock.
//
//   node tests/pool/pool.cjs --port 3333 --diff 0.0001 [--reject-user bad] [--answer-delay-ms 400]
//
// `--answer-delay-ms` holds every line the pool writes to a miner for that long (in order), like a
// pool across an ocean: answers are still in flight when a test acts.
//
// stdin: `newblock` moves the chain on (the pool sends a clean job within ~100 ms), `quit` exits.
// stdout: the pool's own logging, and one `@pool {json}` line per event the tests read:
//   {"event":"started","port":…}  {"event":"share","valid":…,"job":…,"worker":…,"error":…,"shareDiff":…}
//   {"event":"newblock","height":…}
'use strict';

const http = require('http');
const crypto = require('crypto');
const readline = require('readline');
const Stratum = require('stratum-pool-sha256');

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(arg('port', '3333'));
const diff = Number(arg('diff', '0.0001'));
const rejectUser = arg('reject-user', '');
const answerDelay = Number(arg('answer-delay-ms', '0'));
// Network difficulty 65536 (2^48 hashes a block): no test run ever finds a block.
const bits = arg('bits', '1b00ffff');

const emit = (event) => process.stdout.write(`@pool ${JSON.stringify(event)}\n`);

// --- The node stand-in. ---
let height = 800000;
let prevHash = crypto.randomBytes(32).toString('hex');
const fakeTx = () => {
  const data = crypto.randomBytes(60).toString('hex');
  const txid = crypto.randomBytes(32).toString('hex');
  return { data, txid, hash: txid, fee: 0, depends: [], sigops: 0, weight: 240 };
};
let transactions = [fakeTx(), fakeTx()];

function template() {
  return {
    version: 0x20000000,
    rules: [],
    previousblockhash: prevHash,
    transactions,
    coinbaseaux: { flags: '' },
    coinbasevalue: 312500000,
    bits,
    curtime: Math.floor(Date.now() / 1000),
    mintime: Math.floor(Date.now() / 1000) - 600,
    height,
  };
}

const scriptPubKey = '76a914' + '11'.repeat(20) + '88ac';
const answers = {
  getpeerinfo: () => [],
  validateaddress: () => ({ isvalid: true, address: 'minepass-test', scriptPubKey }),
  getdifficulty: () => 65536,
  getmininginfo: () => ({ networkhashps: 1e12, blocks: height }),
  getblockchaininfo: () => ({ chain: 'regtest', blocks: height, difficulty: 65536 }),
  getnetworkinfo: () => ({ protocolversion: 70016, connections: 8 }),
  getblocktemplate: () => template(),
  getblock: () => null,
};

function call({ method, params, id }) {
  if (method === 'submitblock') {
    // With no params this is the pool's probe for the method (it expects error code -1).
    if (!params || params.length === 0) return { id, result: null, error: { code: -1, message: 'missing block' } };
    emit({ event: 'submitblock' });
    return { id, result: null, error: null };
  }
  const answer = answers[method];
  if (!answer) return { id, result: null, error: { code: -32601, message: 'Method not found' } };
  return { id, result: answer(params), error: null };
}

const rpc = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    const request = JSON.parse(body);
    const reply = Array.isArray(request) ? request.map(call) : call(request);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(reply));
  });
});

rpc.listen(0, '127.0.0.1', () => {
  const rpcPort = rpc.address().port;
  const pool = Stratum.createPool(
    {
      coin: { name: 'Bitcoin', symbol: 'BTC', algorithm: 'sha256', asicboost: false },
      address: 'minepass-test',
      ports: { [port]: { diff } },
      daemons: [{ host: '127.0.0.1', port: rpcPort, user: 'u', password: 'p' }],
      blockRefreshInterval: 100,
      jobRebroadcastTimeout: 55,
      connectionTimeout: 600,
      emitInvalidBlockHashes: false,
      banning: { enabled: false },
      p2p: { enabled: false },
    },
    (ip, port, worker, password, callback) => {
      const authorized = worker !== rejectUser;
      emit({ event: 'authorize', worker, authorized });
      callback({ error: null, authorized, disconnect: false });
    },
  );
  pool.on('share', (isValidShare, isValidBlock, data) => {
    emit({
      event: 'share',
      valid: isValidShare,
      block: isValidBlock,
      job: data.job,
      worker: data.worker,
      error: data.error || null,
      shareDiff: data.shareDiff || null,
    });
  });
  pool.on('log', (severity, text) => {
    if (severity !== 'debug') process.stdout.write(`[pool ${severity}] ${text}\n`);
  });
  pool.on('started', () => {
    if (answerDelay > 0) {
      pool.stratumServer.on('client.connected', (client) => {
        const write = client.socket.write.bind(client.socket);
        client.socket.write = (data) => {
          setTimeout(() => client.socket.destroyed || write(data), answerDelay);
          return true;
        };
      });
    }
    emit({ event: 'started', port });
  });
  pool.start();
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'newblock') {
    height += 1;
    prevHash = crypto.randomBytes(32).toString('hex');
    transactions = [fakeTx(), fakeTx()];
    emit({ event: 'newblock', height });
  } else if (line.trim() === 'quit') {
    process.exit(0);
  }
});
