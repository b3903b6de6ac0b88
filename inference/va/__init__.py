"""Valence/arousal models: FaceChannel port (facechannel), expression-derived VA (expression), word norms."""
