-- MariaDB dump 10.19
CREATE TABLE `t` (`id` int, `v` text);
INSERT INTO `t` VALUES (1,'a\'b'),(2,NULL),(3,'(x),');
INSERT INTO `t` VALUES
(4,'y'),
(5,'z');
-- Dump completed on 2026-12-06
