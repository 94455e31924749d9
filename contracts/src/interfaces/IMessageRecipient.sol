// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title IMessageRecipient
 * @notice Implemented by every contract a {IMailbox} delivers messages to.
 */
interface IMessageRecipient {
    /**
     * @notice Handle a message the local Mailbox has verified and marked delivered.
     * @dev Must check `msg.sender` is the local Mailbox and that `(origin, sender)` is trusted.
     * A revert undoes the delivery: the Mailbox does not mark the message delivered, so the
     * relayer may retry it (the per-path order then holds later messages of the same path).
     * @param origin Domain (chain id) the message was dispatched on.
     * @param sender The dispatching contract on `origin`, left-padded to 32 bytes.
     * @param body The application payload.
     */
    function handle(uint32 origin, bytes32 sender, bytes calldata body) external;
}
