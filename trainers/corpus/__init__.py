"""The open telephony deepfake corpus, built from packaged human speech and synthesizers."""
