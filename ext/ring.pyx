# Cython AF_PACKET responder: being written (issue 2).
