// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Settlement} from "../../../src/libraries/Settlement.sol";
import {Message} from "../../../src/libraries/Message.sol";
import {SettlementSystem} from "../SettlementSystem.sol";

/**
 * @dev Drives the whole multi-domain system for the settlement invariant test. It owns a
 * {SettlementSystem} (hub + three chains, 6/6/18 decimals) and exposes bounded actions:
 * deposits on any chain, random zero-sum batches (trades between accounts and chains,
 * withdrawals, bridge legs netted so each chain is a pure sender or receiver), delivery of a
 * random pending message (often out of its path's order), replays of delivered messages,
 * forged deliveries (under-signed, body flipped after signing, non-validator signers) and
 * relaying everything.
 *
 * Ghost state: `projected[c][a]` is each account's settled balance on chain `c` once every
 * committed batch applies (canonical units; batches are built from it, so every debit and
 * withdrawal is covered when it applies); deposit and withdrawal totals; in-flight bridge value
 * (burned, mint not yet delivered); per message id the number of successful deliveries; counters
 * of accepted replays, forgeries and out-of-path-order deliveries (all must stay 0).
 */
contract SettlementHandler is SettlementSystem {
    uint256 internal constant ACTORS = 4;
    uint256 internal constant CHAINS = 3;
    uint256 internal constant MAX_DEPOSIT = 1_000_000e6; // the faucet cap in canonical units

    address[ACTORS] public actors;
    address[CHAINS] public payees;

    // ---------------------------------------------------------------- ghosts
    mapping(uint256 chain => mapping(uint256 actor => uint256)) public projected;
    uint256 public ghostDeposited;
    uint256 public ghostWithdrawalsCommitted;
    uint256 public ghostInFlight;
    uint256 public ghostBatches;
    uint256 public ghostDeliveries;
    uint256 public ghostDoubleDeliveries;
    uint256 public ghostReplaysAccepted;
    uint256 public ghostForgeriesAccepted;
    uint256 public ghostOutOfOrderAccepted;
    uint256 public ghostReorderAttempts;
    mapping(bytes32 id => uint256) public deliveries;
    mapping(bytes32 path => uint32) internal _pathDelivered;
    /// @dev Canonical amount carried by pending message `i` when it is a token-bridge mint, else 0.
    mapping(uint256 index => uint256) internal _mintAmount;

    bytes32[] public withdrawalIds;
    uint256[] public withdrawalChain;
    uint256[] public withdrawalAmount;

    /// @dev One batch under construction: `delta[c][a]` and the withdrawals drawn so far.
    struct Plan {
        int256[ACTORS][CHAINS] delta;
        uint256[ACTORS][CHAINS] drawn;
        uint256[2] wChain;
        uint256[2] wActor;
        uint256[2] wAmount;
        uint256 wCount;
    }

    constructor() {
        _deploySystem();
        for (uint256 a; a < ACTORS; ++a) {
            actors[a] = address(uint160(0xA0000 + a));
        }
        for (uint256 c; c < CHAINS; ++c) {
            payees[c] = address(uint160(0xB0000 + c));
        }
    }

    // ================================================================ actions

    function deposit(uint256 chainSeed, uint256 actorSeed, uint256 amount) external {
        uint256 c = chainSeed % CHAINS;
        uint256 a = actorSeed % ACTORS;
        amount = bound(amount, 1, MAX_DEPOSIT);
        _deposit(domainIds[c], actors[a], amount);
        projected[c][a] += amount;
        ghostDeposited += amount;
    }

    /// @dev Commit a random zero-sum batch built from the projected balances.
    function submitBatch(uint256 seed) external {
        Plan memory p;
        for (uint256 k; k < 3; ++k) {
            _planTrade(p, uint256(keccak256(abi.encode(seed, "trade", k))));
        }
        for (uint256 k; k < 2; ++k) {
            _planWithdrawal(p, uint256(keccak256(abi.encode(seed, "withdraw", k))));
        }
        Settlement.ChainSettlement[] memory s = _nextBatch();
        for (uint256 c; c < CHAINS; ++c) {
            s[c].deltas = _deltasOf(p, c);
            s[c].withdrawals = _withdrawalsOf(p, c);
        }
        _addLegs(p, s);
        uint256 before = pending.length;
        _submit(s);
        _classify(before);
        for (uint256 c; c < CHAINS; ++c) {
            for (uint256 a; a < ACTORS; ++a) {
                int256 next = int256(projected[c][a]) + p.delta[c][a] - int256(p.drawn[c][a]);
                projected[c][a] = uint256(next); // >= 0 by construction; the cast panics otherwise
            }
        }
        ++ghostBatches;
    }

    /// @dev Try to deliver a random undelivered message (out of order as often as not).
    function deliver(uint256 seed) external {
        uint256 n = pending.length;
        if (n == 0) return;
        for (uint256 k; k < n; ++k) {
            uint256 i = (seed % n + k) % n;
            if (!pending[i].delivered) {
                _deliverTracked(i);
                return;
            }
        }
    }

    /// @dev Re-process a delivered message with fresh valid signatures: must be refused.
    function replay(uint256 seed) external {
        uint256 n = pending.length;
        if (n == 0) return;
        uint256 i = seed % n;
        Pending storage p = pending[i];
        if (!p.delivered) return;
        bytes[] memory sigs = _validatorSigs(p.message, p.destination);
        try chains[p.destination].mailbox.process(p.message, sigs) {
            ++ghostReplaysAccepted;
        } catch {}
    }

    /// @dev Try an undelivered message with bad signatures or a tampered body: must be refused.
    function forge(uint256 seed, uint8 kind) external {
        uint256 n = pending.length;
        if (n == 0) return;
        uint256 i = seed % n;
        Pending storage p = pending[i];
        if (p.delivered) return;
        bytes memory message = p.message;
        bytes[] memory sigs = _validatorSigs(message, p.destination);
        kind %= 3;
        if (kind == 0) {
            bytes[] memory one = new bytes[](1);
            one[0] = sigs[0];
            sigs = one;
        } else if (kind == 1) {
            message = bytes.concat(message);
            uint256 at = Message.BODY_OFFSET + (seed >> 128) % (message.length - Message.BODY_OFFSET);
            message[at] = bytes1(uint8(message[at]) ^ 0x01);
        } else {
            uint256[] memory keys = new uint256[](THRESHOLD);
            for (uint256 k; k < THRESHOLD; ++k) {
                keys[k] = 0xF00 + k;
            }
            sigs = _signSorted(keys, chains[p.destination].mailbox.deliveryDigest(keccak256(message)));
        }
        try chains[p.destination].mailbox.process(message, sigs) {
            ++ghostForgeriesAccepted;
        } catch {}
    }

    /// @dev Deliver everything deliverable, passes starting at a random index.
    function relayAll(uint256 seed) public returns (uint256 left) {
        bool progress = true;
        while (progress) {
            progress = false;
            uint256 n = pending.length;
            for (uint256 k; k < n; ++k) {
                uint256 i = (seed % n + k) % n;
                if (!pending[i].delivered && _deliverTracked(i)) progress = true;
            }
        }
        return undelivered();
    }

    // ================================================================ views for the invariants

    function chainCount() external pure returns (uint256) {
        return CHAINS;
    }

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function chainAt(uint256 c)
        external
        view
        returns (address token, address vault, address mailbox, uint256 scale)
    {
        Chain storage ch = chains[domainIds[c]];
        return (address(ch.token), address(ch.vault), address(ch.mailbox), ch.scale);
    }

    function hubAddress() external view returns (address) {
        return address(hub);
    }

    function pendingCount() external view returns (uint256) {
        return pending.length;
    }

    function pendingAt(uint256 i) external view returns (bytes32 id, uint32 destination, bool isDelivered) {
        Pending storage p = pending[i];
        return (keccak256(p.message), p.destination, p.delivered);
    }

    function undelivered() public view returns (uint256 left) {
        for (uint256 i; i < pending.length; ++i) {
            if (!pending[i].delivered) ++left;
        }
    }

    function withdrawalCount() external view returns (uint256) {
        return withdrawalIds.length;
    }

    // ================================================================ internal: delivery

    /// @dev Deliver `i` through the fixture; on success update the ghosts and check path order.
    function _deliverTracked(uint256 i) internal returns (bool ok) {
        Pending storage p = pending[i];
        bytes32 path = _pathOf(p.message);
        uint32 nonce = _nonceOf(p.message);
        if (nonce != _pathDelivered[path]) ++ghostReorderAttempts;
        uint256 before = pending.length;
        (ok,) = _tryDeliver(i);
        if (!ok) return false;
        if (nonce != _pathDelivered[path]) ++ghostOutOfOrderAccepted;
        ++_pathDelivered[path];
        bytes32 id = keccak256(p.message);
        if (++deliveries[id] > 1) ++ghostDoubleDeliveries;
        ++ghostDeliveries;
        ghostInFlight -= _mintAmount[i];
        _classify(before);
    }

    /// @dev Record the canonical amount of every token-bridge mint message pushed from `from` on.
    function _classify(uint256 from) internal {
        for (uint256 j = from; j < pending.length; ++j) {
            Pending storage p = pending[j];
            address recipient = _recipientOf(p.message);
            if (recipient == address(chains[p.destination].bridge)) {
                (, uint256 amount) = abi.decode(_bodyOf(p.message), (uint64, uint256));
                _mintAmount[j] = amount;
                ghostInFlight += amount;
            }
        }
    }

    function _pathOf(bytes memory m) internal pure returns (bytes32 path) {
        // origin (4) | sender (32) | destination (4): bytes 5..45 of the header
        bytes memory key = new bytes(40);
        for (uint256 k; k < 40; ++k) {
            key[k] = m[5 + k];
        }
        path = keccak256(key);
    }

    function _nonceOf(bytes memory m) internal pure returns (uint32 n) {
        n = uint32(uint8(m[1])) << 24 | uint32(uint8(m[2])) << 16 | uint32(uint8(m[3])) << 8 | uint32(uint8(m[4]));
    }

    function _recipientOf(bytes memory m) internal pure returns (address r) {
        bytes32 word;
        assembly {
            word := mload(add(m, add(32, 45)))
        }
        r = Message.bytes32ToAddress(word);
    }

    function _bodyOf(bytes memory m) internal pure returns (bytes memory body) {
        body = new bytes(m.length - Message.BODY_OFFSET);
        for (uint256 k; k < body.length; ++k) {
            body[k] = m[Message.BODY_OFFSET + k];
        }
    }

    // ================================================================ internal: batch planning

    /// @dev Move a random part of one account's projected balance on one chain to another
    /// account on (possibly) another chain.
    function _planTrade(Plan memory p, uint256 r) internal view {
        uint256 fc = r % CHAINS;
        uint256 fa = (r >> 8) % ACTORS;
        uint256 tc = (r >> 16) % CHAINS;
        uint256 ta = (r >> 24) % ACTORS;
        int256 availNow = int256(projected[fc][fa]) + p.delta[fc][fa];
        // Never plan a debit that the account's balance before this batch cannot cover on its own.
        if (availNow > int256(projected[fc][fa])) availNow = int256(projected[fc][fa]);
        if (availNow <= 0) return;
        uint256 amount = bound(r >> 32, 0, uint256(availNow));
        p.delta[fc][fa] -= int256(amount);
        p.delta[tc][ta] += int256(amount);
    }

    /// @dev Withdraw a random part of what an account will hold on a chain after the deltas.
    function _planWithdrawal(Plan memory p, uint256 r) internal view {
        uint256 c = r % CHAINS;
        uint256 a = (r >> 8) % ACTORS;
        int256 avail = int256(projected[c][a]) + p.delta[c][a] - int256(p.drawn[c][a]);
        if (avail <= 0) return;
        uint256 amount = bound(r >> 16, 0, uint256(avail));
        if (amount == 0) return;
        p.drawn[c][a] += amount;
        p.wChain[p.wCount] = c;
        p.wActor[p.wCount] = a;
        p.wAmount[p.wCount] = amount;
        ++p.wCount;
    }

    function _deltasOf(Plan memory p, uint256 c) internal view returns (Settlement.AccountDelta[] memory d) {
        uint256 n;
        for (uint256 a; a < ACTORS; ++a) {
            if (p.delta[c][a] != 0) ++n;
        }
        d = new Settlement.AccountDelta[](n);
        n = 0;
        for (uint256 a; a < ACTORS; ++a) {
            if (p.delta[c][a] != 0) d[n++] = Settlement.AccountDelta(actors[a], p.delta[c][a]);
        }
    }

    function _withdrawalsOf(Plan memory p, uint256 c) internal returns (Settlement.Withdrawal[] memory w) {
        uint256 n;
        for (uint256 k; k < p.wCount; ++k) {
            if (p.wChain[k] == c) ++n;
        }
        w = new Settlement.Withdrawal[](n);
        n = 0;
        for (uint256 k; k < p.wCount; ++k) {
            if (p.wChain[k] != c) continue;
            bytes32 id = keccak256(abi.encode("withdrawal", withdrawalIds.length));
            w[n++] = Settlement.Withdrawal(id, actors[p.wActor[k]], payees[c], p.wAmount[k]);
            withdrawalIds.push(id);
            withdrawalChain.push(c);
            withdrawalAmount.push(p.wAmount[k]);
            ghostWithdrawalsCommitted += p.wAmount[k];
        }
    }

    /// @dev Net each chain's deltas; chains that lose value send it to chains that gain it,
    /// greedily in ascending domain order, so every chain is a pure sender or receiver and every
    /// chain's legs are strictly ascending.
    function _addLegs(Plan memory p, Settlement.ChainSettlement[] memory s) internal pure {
        int256[CHAINS] memory net;
        for (uint256 c; c < CHAINS; ++c) {
            for (uint256 a; a < ACTORS; ++a) {
                net[c] += p.delta[c][a];
            }
        }
        uint256[CHAINS][CHAINS] memory leg; // leg[from][to]
        uint256[CHAINS] memory outs;
        uint256[CHAINS] memory ins;
        for (uint256 f; f < CHAINS; ++f) {
            for (uint256 t; t < CHAINS && net[f] < 0; ++t) {
                if (net[t] <= 0) continue;
                uint256 x = uint256(-net[f]) < uint256(net[t]) ? uint256(-net[f]) : uint256(net[t]);
                leg[f][t] = x;
                net[f] += int256(x);
                net[t] -= int256(x);
                ++outs[f];
                ++ins[t];
            }
        }
        for (uint256 c; c < CHAINS; ++c) {
            s[c].bridgeOut = new Settlement.BridgeTransfer[](outs[c]);
            s[c].bridgeIn = new Settlement.BridgeTransfer[](ins[c]);
        }
        uint256[CHAINS] memory o;
        uint256[CHAINS] memory n;
        for (uint256 f; f < CHAINS; ++f) {
            for (uint256 t; t < CHAINS; ++t) {
                if (leg[f][t] == 0) continue;
                s[f].bridgeOut[o[f]++] = Settlement.BridgeTransfer(s[t].domain, leg[f][t]);
                s[t].bridgeIn[n[t]++] = Settlement.BridgeTransfer(s[f].domain, leg[f][t]);
            }
        }
    }
}
