"""radpipe.kube"""
