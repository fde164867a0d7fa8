/* XDP ARP/NDP responder: being written (issue 2). */
