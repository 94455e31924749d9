// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CollateralToken} from "../../src/CollateralToken.sol";
import {CollateralVault} from "../../src/CollateralVault.sol";
import {Mailbox} from "../../src/Mailbox.sol";
import {SettlementHub} from "../../src/SettlementHub.sol";
import {TokenBridge} from "../../src/TokenBridge.sol";
import {IMailbox} from "../../src/interfaces/IMailbox.sol";
import {Message} from "../../src/libraries/Message.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {TestBase, Vm} from "../invariant/helpers/TestBase.sol";

/**
 * @dev Several Omniclear "chains" in one EVM, as Hyperlane's MockMailbox links domains: per
 * domain a Mailbox (its own localDomain), a CollateralToken, a CollateralVault and a TokenBridge;
 * a SettlementHub on the hub domain. A test relay collects every `Dispatch` log, signs the
 * delivery digest with validator keys (vm.sign, signer-sorted) and calls `process` on the
 * destination Mailbox. This contract owns and administers everything it deploys.
 */
abstract contract SettlementSystem is TestBase {
    uint32 internal constant HUB = 31337; // 6 decimals
    uint32 internal constant ARB = 31338; // 6 decimals
    uint32 internal constant BNB = 31339; // 18 decimals
    uint256 internal constant THRESHOLD = 2;

    struct Chain {
        uint32 domain;
        Mailbox mailbox;
        CollateralToken token;
        CollateralVault vault;
        TokenBridge bridge;
        uint256 scale;
    }

    struct Pending {
        bytes message;
        uint32 destination;
        bool delivered;
    }

    mapping(uint32 domain => Chain) internal chains;
    uint32[] internal domainIds;
    SettlementHub internal hub;

    uint256[] internal validatorKeys;
    address[] internal validatorAddrs;
    uint256 internal sequencerKey = 0x5E0;
    Pending[] internal pending;

    function _deploySystem() internal {
        validatorKeys.push(0xA1);
        validatorKeys.push(0xB2);
        validatorKeys.push(0xC3);
        for (uint256 i; i < validatorKeys.length; ++i) {
            validatorAddrs.push(vm.addr(validatorKeys[i]));
        }
        _deployChain(HUB, 6);
        _deployChain(ARB, 6);
        _deployChain(BNB, 18);
        hub = new SettlementHub(address(this), address(chains[HUB].mailbox), vm.addr(sequencerKey));
        for (uint256 i; i < domainIds.length; ++i) {
            Chain storage c = chains[domainIds[i]];
            c.vault.setSettlement(
                address(c.mailbox), HUB, Message.addressToBytes32(address(hub)), address(c.token), address(c.bridge)
            );
            hub.setVault(c.domain, address(c.vault));
            for (uint256 j; j < domainIds.length; ++j) {
                if (i == j) continue;
                c.bridge.setRemoteBridge(domainIds[j], Message.addressToBytes32(address(chains[domainIds[j]].bridge)));
            }
        }
    }

    function _deployChain(uint32 domain, uint8 decimals) private {
        Mailbox mailbox = new Mailbox(address(this), domain, validatorAddrs, THRESHOLD);
        CollateralToken token = new CollateralToken("USD Coin", "USDC", decimals, address(this), true);
        CollateralVault vault = new CollateralVault(address(this), address(this));
        TokenBridge bridge = new TokenBridge(address(this), address(mailbox), address(token), address(vault));
        token.grantRole(token.MINTER_ROLE(), address(bridge));
        vault.setTokenAllowed(address(token), true);
        chains[domain] = Chain(domain, mailbox, token, vault, bridge, 10 ** (decimals - 6));
        domainIds.push(domain);
    }

    // ------------------------------------------------------------------ accounts

    /// @dev Faucet `canonical` (in native units) to `who` on `domain` and deposit it.
    function _deposit(uint32 domain, address who, uint256 canonical) internal {
        Chain storage c = chains[domain];
        uint256 native = canonical * c.scale;
        c.token.faucet(who, native);
        vm.startPrank(who);
        c.token.approve(address(c.vault), native);
        c.vault.deposit(address(c.token), native);
        vm.stopPrank();
    }

    /// @dev Settled balance of `who` on `domain`, in canonical units (floor).
    function _balance(uint32 domain, address who) internal view returns (uint256) {
        Chain storage c = chains[domain];
        return c.vault.balanceOf(who, address(c.token)) / c.scale;
    }

    // ------------------------------------------------------------------ batches

    /// @dev One empty ChainSettlement per domain (ascending) for batch `n`.
    function _emptyBatch(uint64 n) internal view returns (Settlement.ChainSettlement[] memory s) {
        s = new Settlement.ChainSettlement[](domainIds.length);
        for (uint256 i; i < domainIds.length; ++i) {
            s[i].domain = domainIds[i];
            s[i].batchNumber = n;
        }
    }

    // ------------------------------------------------------------------ batch builders

    function _deltas1(address a, int256 x) internal pure returns (Settlement.AccountDelta[] memory d) {
        d = new Settlement.AccountDelta[](1);
        d[0] = Settlement.AccountDelta(a, x);
    }

    function _deltas2(address a, int256 x, address b, int256 y)
        internal
        pure
        returns (Settlement.AccountDelta[] memory d)
    {
        d = new Settlement.AccountDelta[](2);
        d[0] = Settlement.AccountDelta(a, x);
        d[1] = Settlement.AccountDelta(b, y);
    }

    function _legs1(uint32 domain, uint256 amount) internal pure returns (Settlement.BridgeTransfer[] memory l) {
        l = new Settlement.BridgeTransfer[](1);
        l[0] = Settlement.BridgeTransfer(domain, amount);
    }

    function _legs2(uint32 d1, uint256 a1, uint32 d2, uint256 a2)
        internal
        pure
        returns (Settlement.BridgeTransfer[] memory l)
    {
        l = new Settlement.BridgeTransfer[](2);
        l[0] = Settlement.BridgeTransfer(d1, a1);
        l[1] = Settlement.BridgeTransfer(d2, a2);
    }

    function _withdrawal1(bytes32 id, address account, address recipient, uint256 amount)
        internal
        pure
        returns (Settlement.Withdrawal[] memory w)
    {
        w = new Settlement.Withdrawal[](1);
        w[0] = Settlement.Withdrawal(id, account, recipient, amount);
    }

    function _nextBatch() internal view returns (Settlement.ChainSettlement[] memory) {
        return _emptyBatch(hub.lastBatchNumber() + 1);
    }

    function _header(Settlement.ChainSettlement[] memory s) internal view returns (Settlement.BatchHeader memory h) {
        uint64 n = s.length == 0 ? hub.lastBatchNumber() + 1 : s[0].batchNumber;
        h = Settlement.BatchHeader({
            batchNumber: n,
            prevBatchHash: hub.lastBatchHash(),
            stateRoot: keccak256(abi.encode("state", n)),
            journalHash: keccak256(abi.encode("journal", n)),
            settlementsHash: keccak256(abi.encode(s))
        });
    }

    function _signBatch(Settlement.BatchHeader memory h, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 sig) = vm.sign(key, hub.batchDigest(h));
        return abi.encodePacked(r, sig, v);
    }

    /// @dev Sign, submit and collect the dispatched settlement messages.
    function _submit(Settlement.ChainSettlement[] memory s) internal returns (Settlement.BatchHeader memory h) {
        h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.recordLogs();
        hub.submitBatch(h, s, sig);
        _collect();
    }

    // ------------------------------------------------------------------ relay

    /// @dev Append every `Dispatch` recorded since the last `vm.recordLogs()` to `pending`.
    function _collect() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics.length == 4 && logs[i].topics[0] == IMailbox.Dispatch.selector) {
                (, bytes memory message) = abi.decode(logs[i].data, (uint32, bytes));
                pending.push(Pending(message, uint32(uint256(logs[i].topics[3])), false));
            }
        }
    }

    /// @dev `keys[i]`'s signatures over `digest`, sorted by signer address ascending.
    function _signSorted(uint256[] memory keys, bytes32 digest) internal pure returns (bytes[] memory sigs) {
        uint256 n = keys.length;
        address[] memory signers = new address[](n);
        sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            signers[i] = vm.addr(keys[i]);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            sigs[i] = abi.encodePacked(r, s, v);
        }
        for (uint256 i = 1; i < n; ++i) {
            for (uint256 j = i; j > 0 && signers[j - 1] > signers[j]; --j) {
                (signers[j - 1], signers[j]) = (signers[j], signers[j - 1]);
                (sigs[j - 1], sigs[j]) = (sigs[j], sigs[j - 1]);
            }
        }
    }

    /// @dev Threshold signatures of the first validators for `message` delivered on `destination`.
    function _validatorSigs(bytes memory message, uint32 destination) internal view returns (bytes[] memory) {
        uint256[] memory keys = new uint256[](THRESHOLD);
        for (uint256 i; i < THRESHOLD; ++i) {
            keys[i] = validatorKeys[i];
        }
        return _signSorted(keys, chains[destination].mailbox.deliveryDigest(keccak256(message)));
    }

    /// @dev Try to deliver pending message `i`; collect what it dispatches. Returns success.
    function _tryDeliver(uint256 i) internal returns (bool ok, bytes memory reason) {
        Pending storage p = pending[i];
        if (p.delivered) return (false, "");
        bytes[] memory sigs = _validatorSigs(p.message, p.destination);
        vm.recordLogs();
        try chains[p.destination].mailbox.process(p.message, sigs) {
            p.delivered = true;
            _collect();
            return (true, "");
        } catch (bytes memory r) {
            return (false, r);
        }
    }

    /// @dev Deliver pending messages, starting each pass at `seed % n`, until a pass makes no
    /// progress. Returns the number still undelivered.
    function _relayAll(uint256 seed) internal returns (uint256 left) {
        bool progress = true;
        while (progress) {
            progress = false;
            uint256 n = pending.length;
            for (uint256 k; k < n; ++k) {
                uint256 i = (seed % n + k) % n; // no overflow for any seed
                (bool ok,) = _tryDeliver(i);
                if (ok) progress = true;
            }
        }
        for (uint256 i; i < pending.length; ++i) {
            if (!pending[i].delivered) ++left;
        }
    }

    function _relayAll() internal returns (uint256) {
        return _relayAll(0);
    }

    /// @dev Index of the first undelivered pending message to `destination` (reverts if none).
    function _pendingTo(uint32 destination) internal view returns (uint256) {
        for (uint256 i; i < pending.length; ++i) {
            if (!pending[i].delivered && pending[i].destination == destination) return i;
        }
        revert("no pending message to destination");
    }
}
